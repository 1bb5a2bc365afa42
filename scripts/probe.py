#!/usr/bin/env python3
"""Readiness probes that speak each broker's protocol, so scripts wait until a
broker really answers rather than for a fixed sleep or an open port.

  probe.py kafka HOST:PORT              ApiVersions request, expects a reply
  probe.py namesrv HOST:PORT            RocketMQ GET_BROKER_CLUSTER_INFO, expects code 0
  probe.py broker HOST:PORT NAME ADDR   same, and broker NAME registered at ADDR

Exit 0 when ready, 1 otherwise (with the reason on stderr).
"""
import json
import socket
import struct
import sys


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=3)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed before a full reply")
        data += chunk
    return data


def kafka(addr):
    client_id = b"probe"
    # ApiVersions (key 18) v0 with request header v1.
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    with connect(addr) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size, correlation = struct.unpack(">ii", recv_exact(sock, 8))
        recv_exact(sock, size - 4)
    if correlation != 7:
        raise RuntimeError(f"unexpected correlation id {correlation}")


def cluster_info(addr):
    header = json.dumps({
        "code": 106, "language": "JAVA", "version": 0, "opaque": 1, "flag": 0,
        "extFields": {}, "serializeTypeCurrentRPC": "JSON",
    }).encode()
    frame = struct.pack(">i", len(header)) + header
    with connect(addr) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (length,) = struct.unpack(">i", recv_exact(sock, 4))
        payload = recv_exact(sock, length)
    header_len = struct.unpack(">i", payload[:4])[0] & 0xFFFFFF
    reply = json.loads(payload[4:4 + header_len])
    if reply.get("code") != 0:
        raise RuntimeError(f"name server answered code {reply.get('code')}: {reply.get('remark')}")
    return payload[4 + header_len:].decode("utf-8", "replace")


def main(argv):
    try:
        if argv[1] == "kafka":
            kafka(argv[2])
        elif argv[1] == "namesrv":
            cluster_info(argv[2])
        elif argv[1] == "broker":
            body = cluster_info(argv[2])
            if f'"{argv[3]}"' not in body or argv[4] not in body:
                raise RuntimeError(f"broker {argv[3]} at {argv[4]} is not registered yet")
        else:
            raise SystemExit(__doc__)
    except (OSError, RuntimeError, ValueError, ConnectionError) as error:
        print(f"{argv[1]} {argv[2]}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
