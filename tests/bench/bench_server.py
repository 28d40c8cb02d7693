#!/usr/bin/python3
"""Benchmark of lib/server through mailhostd's echo service. Prints
figures, never fails on speed. MH_MAILHOSTD is the built binary.

Figures: plain round trips per second with many concurrent clients,
connections per second, TLS handshakes per second (implicit TLS,
ECDSA P-256), and the wall time of parallel blocking jobs against the
worker pool size. The client is Python asyncio, so the numbers are a
floor: the client is usually the bottleneck.
"""
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

MAILHOSTD = os.environ.get("MH_MAILHOSTD", "mailhostd")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp, port, tls, threads=8):
    conf = os.path.join(tmp, "bench-%s.conf" % tls)
    with open(conf, "w") as f:
        f.write("[general]\nlog_level = warning\nlog_target = stderr\n"
                "worker_threads = %d\n[limits]\nmax_connections = 5000\n"
                "max_connections_per_ip = 5000\n"
                "[echo]\nenabled = true\nlisten = 127.0.0.1:%d\ntls = %s\n"
                % (threads, port, tls))
    p = subprocess.Popen([MAILHOSTD, "--config", conf, "--data-dir",
                          os.path.join(tmp, "data")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.02)
    p.kill()
    raise SystemExit("mailhostd did not start")


async def round_trips(port, clients, per_client):
    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        await r.readline()
        for i in range(per_client):
            w.write(b"ECHO %d\r\n" % i)
            await r.readline()
        w.write(b"QUIT\r\n")
        await r.readline()
        w.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return clients * per_client / (time.perf_counter() - t0)


async def connections(port, n, ctx=None):
    t0 = time.perf_counter()
    for _ in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        await r.readline()
        w.write(b"QUIT\r\n")
        await r.readline()
        w.close()
    return n / (time.perf_counter() - t0)


async def slow_jobs(port, n, ms):
    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        await r.readline()
        w.write(b"SLOW %d\r\n" % ms)
        await r.readline()
        w.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - t0


def main():
    tmp = tempfile.mkdtemp(prefix="mh-bench-server-")
    procs = []
    try:
        data = os.path.join(tmp, "data")
        # a certificate through mailhostd's own demo path
        subprocess.run([MAILHOSTD, "--demo", "--data-dir", data,
                        "--print-config"], check=True,
                       stdout=subprocess.DEVNULL)
        plain, tls = free_port(), free_port()
        procs.append(start(tmp, plain, "none", threads=8))
        procs.append(start(tmp, tls, "implicit"))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        rt = asyncio.run(round_trips(plain, 200, 100))
        print("plain round trips, 200 clients x 100: %.0f/s" % rt)
        cps = asyncio.run(connections(plain, 1000))
        print("plain connect+greeting+QUIT, sequential: %.0f/s" % cps)
        hs = asyncio.run(connections(tls, 300, ctx))
        print("TLS (implicit, ECDSA P-256) connects, sequential: %.0f/s" % hs)
        wall = asyncio.run(slow_jobs(plain, 16, 500))
        print("16 blocking jobs of 500 ms on 8 workers: %.2f s wall "
              "(ideal 1.00)" % wall)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
