// A TCP relay in front of a gateway, as a load balancer or a phone's network path is: the tests cut the
// connection under a client (a reset, no close frame) and let it come back through the same address,
// to the same gateway or, with reopen(port), to another one.
import net from 'node:net';

export async function startRelay(targetPort) {
  const pairs = new Set();
  let accepting = true;
  const server = net.createServer((client) => {
    if (!accepting) { client.resetAndDestroy(); return; }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    // A half-open pair keeps its gateway side open after its client side is gone (see cutClientSide).
    const end = () => { if (pair.halfOpen) return; pairs.delete(pair); client.destroy(); upstream.destroy(); };
    for (const s of [client, upstream]) { s.on('error', end); s.on('close', end); }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    // Both ends reset, and new connections refused until reopen().
    cut() { accepting = false; for (const p of pairs) { p.client.resetAndDestroy(); p.upstream.resetAndDestroy(); } },
    // Only the client's side goes: the gateway's socket stays open and hears nothing (a phone that changed
    // networks: the old path's end never reaches the server).
    cutClientSide() {
      accepting = false;
      for (const p of pairs) { p.halfOpen = true; p.client.unpipe(p.upstream); p.upstream.unpipe(p.client); p.client.resetAndDestroy(); }
    },
    // Accepts again, to the same gateway or to the one on `port`.
    reopen(port = targetPort) { targetPort = port; accepting = true; },
    close() { for (const p of pairs) { p.halfOpen = false; p.client.destroy(); p.upstream.destroy(); } server.close(); },
  };
}
