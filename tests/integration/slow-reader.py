#!/usr/bin/env python3
"""A WebSocket client that never reads, with as little kernel buffering as TCP allows.

Usage: slow-reader.py PORT PAYLOAD_BYTES SECONDS [MESSAGE [then-read]]

Node cannot set a TCP socket's options before it connects, and on loopback Linux grows a receive buffer
up to net.ipv4.tcp_rmem's maximum (32 MB here): millions of small echoes vanish into the kernel before
the gateway's own send queue holds any, and a sanitizer build takes a minute to produce them. This client
fixes its receive buffer at 4 KiB (which turns autotuning off) and advertises an 88-byte MSS (the least
Linux takes), so the gateway's socket buffer holds few bytes too: the gateway's own queue is what fills.

It upgrades, prints the status line, then writes masked text frames of PAYLOAD_BYTES in batches of 1,000
until the gateway drops the connection or SECONDS pass, never reading. With MESSAGE it sends that one text
message instead (a request that makes a handler push to this connection) and then only waits, never reading. Its last line is
`sent N frames; ended by <reason>`. Exit 0, or 1 when the upgrade failed. With `then-read` after MESSAGE it
reads once SECONDS have passed: every message until one whose text starts with "done" or a close, each
counted, and its last line is `read N messages, then <"the done message" | close CODE | end of stream>`.
"""
import base64
import os
import select
import socket
import sys
import time


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, 'big')
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, 'big')
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_messages(sock) -> str:
    """Reads unmasked server frames (no fragmentation expected) until a message starting with "done"."""
    buf = b''
    count = 0
    sock.settimeout(30)

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            buf += chunk
        return True

    while True:
        if not need(2):
            return f'read {count} messages, then end of stream'
        opcode, n = buf[0] & 0x0f, buf[1] & 0x7f
        at = 2
        if n == 126:
            if not need(4):
                return f'read {count} messages, then end of stream'
            n, at = int.from_bytes(buf[2:4], 'big'), 4
        elif n == 127:
            if not need(10):
                return f'read {count} messages, then end of stream'
            n, at = int.from_bytes(buf[2:10], 'big'), 10
        if not need(at + n):
            return f'read {count} messages, then end of stream'
        payload, buf = buf[at:at + n], buf[at + n:]
        if opcode == 8:
            code = int.from_bytes(payload[:2], 'big') if len(payload) >= 2 else 1005
            return f'read {count} messages, then close {code}'
        if opcode in (1, 2):
            if payload.startswith(b'done'):
                return f'read {count} messages, then "{payload.decode(errors="replace")}"'
            count += 1


def main() -> int:
    port, payload_bytes, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 88)
    sock.connect(('127.0.0.1', port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f'GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                  f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n').encode())
    head = b''
    sock.settimeout(10)
    while b'\r\n\r\n' not in head:
        chunk = sock.recv(1)  # one byte at a time: nothing past the head is taken from the kernel
        if not chunk:
            print('closed before the upgrade answer', flush=True)
            return 1
        head += chunk
    status = head.split(b'\r\n', 1)[0].decode('latin-1')
    print(status, flush=True)
    if ' 101 ' not in status + ' ':
        return 1

    if len(sys.argv) > 5 and sys.argv[5] == 'then-read':
        sock.sendall(masked_text_frame(sys.argv[4].encode()))
        time.sleep(seconds)
        print(read_messages(sock), flush=True)
        sock.close()
        return 0

    if len(sys.argv) > 4:
        sock.sendall(masked_text_frame(sys.argv[4].encode()))
        time.sleep(seconds)
        print('sent 1 message; ended by time', flush=True)
        sock.close()
        return 0

    batch = masked_text_frame(b'e' * payload_bytes) * 1000
    sock.setblocking(False)
    sent_bytes = 0
    reason = 'time'
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _, writable, failed = select.select([], [sock], [sock], 0.2)
            if failed:
                reason = 'socket error'
                break
            if writable:
                sent_bytes += sock.send(batch[sent_bytes % len(batch):])
        except (BrokenPipeError, ConnectionResetError) as err:
            reason = type(err).__name__
            break
    print(f'sent {sent_bytes // len(masked_text_frame(b"e" * payload_bytes))} frames; ended by {reason}', flush=True)
    sock.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
