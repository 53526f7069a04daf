"""CPython's fast AES and AES-CMAC for ``proto.frame`` (OpenSSL through ``cryptography``).

Kept out of ``frame.py`` because that file is what the node runs: MicroPython
interns every name in a module it loads, used or not, and a node has a 64 KiB
heap. The portable RFC 4493 code in ``frame.py`` stays what MicroPython runs;
the RFC 4493 vectors check both.
"""

import threading
from collections.abc import Callable

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_cache = threading.local()  # per thread: an encryptor or CMAC context is not thread-safe


def openssl_cmac(key: bytes, msg: bytes) -> bytes:
    """OpenSSL's AES-CMAC from a context keyed once per key and copied per message: 0.6 us
    against 7 us for the portable code (the fog checks every frame's MIC)."""
    cache = getattr(_cache, "cmac_by_key", None)
    if cache is None:
        cache = _cache.cmac_by_key = {}
    base = cache.get(key)
    if base is None:
        if len(cache) >= 4096:
            cache.clear()
        base = cache[key] = cmac.CMAC(algorithms.AES(key))
    c = base.copy()
    c.update(msg)
    return c.finalize()


def aes_encryptor(key: bytes) -> Callable[[bytes], bytes]:
    """ECB encryptors cached per key: building the AES key schedule is most of a MIC check
    on the fog (ECB keeps no state between whole blocks, so reuse is exact)."""
    cache = getattr(_cache, "by_key", None)
    if cache is None:
        cache = _cache.by_key = {}
    key = bytes(key)
    enc = cache.get(key)
    if enc is None:
        if len(cache) >= 4096:
            cache.clear()
        enc = cache[key] = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update
    return enc
