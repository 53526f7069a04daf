"""Golden-vector and RFC 4493 check, run by BOTH interpreters.

CPython imports ``check_all``; the MicroPython unix port runs this file as a
script (``micropython frame_vectors_check.py VECTORS.json``) and prints
``PASS <n>`` or raises. Written in the subset both interpreters share.
"""

import json
import sys

from proto import frame


def _unhex(s):  # type: ignore[no-untyped-def]
    return bytes.fromhex(s)


def _args(builder, args):  # type: ignore[no-untyped-def]
    """Turn the JSON arguments back into what the payload builders take."""
    if builder == "checkin_payload":
        return [_unhex(args[0])]
    if builder == "command_payload":
        return [args[0], _unhex(args[1])]
    if builder == "config_payload":
        return [args[0], [(e[0], _unhex(e[1])) for e in args[1]]]
    return args


def _field(value):  # type: ignore[no-untyped-def]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [[e[0], e[1].hex()] for e in value]
    return value


def check_all(doc):  # type: ignore[no-untyped-def]
    """Raise AssertionError on the first mismatch; return how many checks passed."""
    n = 0
    rfc = doc["rfc4493"]
    key = _unhex(rfc["key"])
    for case in rfc["cases"]:
        mac = frame.aes_cmac(key, _unhex(case["msg"]))
        assert mac.hex() == case["mac"], "RFC 4493 mismatch for message of " + str(len(case["msg"]) // 2)
        n += 1
    for v in doc["frames"]:
        key = _unhex(v["key"])
        payload = getattr(frame, v["builder"])(*_args(v["builder"], v["args"]))
        raw = frame.encode_frame(v["type"], v["node_id"], v["fcnt"], payload, key)
        assert raw.hex() == v["frame"], "encode mismatch: " + v["name"] + " got " + raw.hex()
        parsed = frame.parse_frame(_unhex(v["frame"]))
        assert parsed.msg_type == v["type"], v["name"]
        assert parsed.node_id == v["node_id"], v["name"]
        assert parsed.fcnt16 == v["fcnt"] & 0xFFFF, v["name"]
        assert parsed.verify(key, v["fcnt"]), "MIC does not verify: " + v["name"]
        assert not parsed.verify(key, v["fcnt"] ^ 0x10000), "MIC ignores high counter bits: " + v["name"]
        fields = parsed.fields()
        for name in v["fields"]:
            assert _field(fields[name]) == v["fields"][name], v["name"] + ": field " + name
        assert len(fields) == len(v["fields"]), v["name"] + ": field count"
        n += 1
    return n


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print("PASS", check_all(json.load(f)))
