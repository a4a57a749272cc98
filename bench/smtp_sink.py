#!/usr/bin/env python3
"""An SMTP sink for the mail benchmark: accepts every message and throws it away.

`bench/smtp_sink.py --port P --control-port C` listens on 127.0.0.1:P for SMTP (EHLO/HELO,
MAIL, RCPT, DATA, RSET, NOOP, QUIT; no STARTTLS, no AUTH, so gatehouse's `smtp://127.0.0.1`
goes plain) and on 127.0.0.1:C for one-line commands from the harness, each answered with
one line:

- `count`: messages accepted so far (answered 250 to their DATA);
- `delay SECONDS`: from now on, wait this long before answering each DATA (0: at once);
- `quit`: stop.

It prints `ready` on stdout once both ports listen. Python's standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys


class Sink:
    def __init__(self, quickack: bool) -> None:
        self.accepted = 0
        self.delay = 0.0
        self.quickack = quickack
        self.stop = asyncio.Event()

    async def smtp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if self.quickack:
            # Linux clears TCP_QUICKACK by itself; set again before every read.
            quick = lambda: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            original = reader.readline

            async def readline() -> bytes:
                quick()
                return await original()

            reader.readline = readline  # type: ignore[method-assign]
        try:
            writer.write(b"220 sink ESMTP\r\n")
            await writer.drain()
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    while True:
                        data = await reader.readline()
                        if not data:
                            return
                        if data == b".\r\n":
                            break
                    if self.delay > 0:
                        await asyncio.sleep(self.delay)
                    self.accepted += 1
                    writer.write(b"250 accepted\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    return
                elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    writer.write(b"250 ok\r\n")
                else:
                    writer.write(b"502 not implemented\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                words = line.decode().split()
                if words == ["count"]:
                    answer = str(self.accepted)
                elif len(words) == 2 and words[0] == "delay":
                    self.delay = float(words[1])
                    answer = "ok"
                elif words == ["quit"]:
                    self.stop.set()
                    answer = "ok"
                else:
                    answer = "?"
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()


async def serve(port: int, control_port: int, delay: float, quickack: bool) -> None:
    sink = Sink(quickack)
    sink.delay = delay
    smtp = await asyncio.start_server(sink.smtp, "127.0.0.1", port, backlog=1024)
    control = await asyncio.start_server(sink.control, "127.0.0.1", control_port)
    print("ready", flush=True)
    async with smtp, control:
        await sink.stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds to wait before answering each DATA")
    parser.add_argument("--quickack", action="store_true",
                        help="acknowledge every TCP segment at once (Linux TCP_QUICKACK) "
                             "instead of delaying ACKs as mail servers' kernels do: a "
                             "diagnosis, not the default")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.control_port, args.delay, args.quickack))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
