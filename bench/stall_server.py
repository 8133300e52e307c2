#!/usr/bin/env python3
"""An HTTP/1.1 keep-alive server whose whole process blocks for STALL seconds
every PERIOD seconds (the event loop sleeps), for the stall benchmark.

usage: stall_server.py PORT [PERIOD STALL]
"""
import asyncio
import sys
import time

port = int(sys.argv[1])
period = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
stall = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(REPLY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def staller():
    while True:
        await asyncio.sleep(period - stall)
        time.sleep(stall)  # blocks everything, as a stop-the-world pause would


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    asyncio.get_running_loop().create_task(staller())
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
