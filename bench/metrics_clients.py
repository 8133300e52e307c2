#!/usr/bin/env python3
"""Hostile clients of sidewatch's /metrics, and a scraper that measures it.

  flood PORT N SECONDS   N connections held open, half idle from the start,
                         half after one keep-alive GET /metrics (on their
                         first connection only); a connection the server
                         closes reconnects, idle, 1-5 s later
  scrape PORT SECONDS    GET /metrics on a new connection every 50 ms; prints
                         JSON {count, errors, p50, p99, max} in seconds
"""
import asyncio
import json
import random
import sys
import time

REQ = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


async def holder(port, i, until):
    scrape = i % 2 == 1
    while time.monotonic() < until:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            if scrape:
                w.write(REQ)
                scrape = False
            while await r.read(65536):
                pass  # read and drop until the server closes
            w.close()
        except OSError:
            pass
        await asyncio.sleep(random.uniform(1, 5))


async def flood(port, n, seconds):
    until = time.monotonic() + seconds
    tasks = [asyncio.create_task(holder(port, i, until)) for i in range(n)]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()


async def one(port):
    t0 = time.monotonic()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = await r.read()
    w.close()
    if not body.startswith(b"HTTP/1.1 200"):
        raise OSError("not 200")
    return time.monotonic() - t0


async def scrape(port, seconds):
    took, errors = [], 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            took.append(await asyncio.wait_for(one(port), 10))
        except (OSError, asyncio.TimeoutError):
            errors += 1
        await asyncio.sleep(0.05)
    took.sort()
    q = lambda p: took[min(len(took) - 1, int(p * len(took)))] if took else None
    print(json.dumps({"count": len(took), "errors": errors, "p50": q(0.5), "p99": q(0.99), "max": took[-1] if took else None}))


mode, port = sys.argv[1], int(sys.argv[2])
if mode == "flood":
    asyncio.run(flood(port, int(sys.argv[3]), float(sys.argv[4])))
else:
    asyncio.run(scrape(port, float(sys.argv[3])))
