#!/usr/bin/env python3
"""A hostile HTTP/1.1 target for bench/hostile.sh.

  /huge       Content-Length: 1 GiB of zeros, sent as fast as the client reads
  /endless    chunked, never ends
  /trickle    a response head at 1 byte/s, never finished
  /redirect/N 302 to /redirect/N+1, forever (10k and more)

usage: hostile_server.py PORT
"""
import asyncio
import sys

port = int(sys.argv[1])
ZEROS = b"\0" * 65536


async def huge(writer):
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
    for _ in range(1073741824 // len(ZEROS)):
        writer.write(ZEROS)
        await writer.drain()


async def endless(writer):
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % len(ZEROS) + ZEROS + b"\r\n"
    while True:
        writer.write(chunk)
        await writer.drain()


async def trickle(writer):
    for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
        writer.write(bytes([b]))
        await writer.drain()
        await asyncio.sleep(1)


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            if path == "/huge":
                await huge(writer)
            elif path == "/endless":
                await endless(writer)
            elif path == "/trickle":
                await trickle(writer)
            elif path.startswith("/redirect/"):
                n = int(path.rsplit("/", 1)[1]) + 1
                writer.write(b"HTTP/1.1 302 Found\r\nLocation: /redirect/%d\r\nContent-Length: 0\r\n\r\n" % n)
                await writer.drain()
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, IndexError, ValueError):
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
