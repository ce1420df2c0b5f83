// A redis-server that a cluster test starts and stops itself: loopback only, on a free port (or a given one,
// to restart it where the nodes expect it), nothing saved to disk.
import net from 'node:net';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { waitFor, withTimeout } from './harness.mjs';

const execFileP = promisify(execFile);

// A port nothing listens on at the moment of asking.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export class RedisServer {
  // Resolves once it answers PING. `extraArgs` go to redis-server after ours (for example
  // ['--appendonly', 'yes', '--dir', DIR] for a server that a restart on the same port finds its data in).
  static async start(port, { extraArgs = [] } = {}) {
    const redis = new RedisServer(port ?? await freePort(), extraArgs);
    await waitFor(async () => (await redis.cli('PING').catch(() => '')) === 'PONG', { timeoutMs: 10000, what: 'redis-server to answer PING' });
    return redis;
  }

  constructor(port, extraArgs = []) {
    this.port = port;
    this.proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no', '--daemonize', 'no', '--logfile', '', ...extraArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve));
  }

  get url() { return `redis://127.0.0.1:${this.port}`; }

  // redis-cli's raw answer, trimmed.
  async cli(...args) {
    const { stdout } = await execFileP('redis-cli', ['-p', String(this.port), '--raw', ...args], { timeout: 5000 });
    return stdout.trim();
  }

  // SIGKILL (a redis-server left running would keep the test process alive); resolves once it has exited.
  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGKILL');
    await withTimeout(this.exited, 5000, 'redis-server to exit');
  }
}
