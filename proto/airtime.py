"""LoRa time on air, by the Semtech formula (SX1276 datasheet 4.1.1.7, AN1200.13).

Shared by the firmware's duty-cycle budget (MicroPython), the bench's radio
channel and ``fogpark-node airtime`` (CPython), so it uses only what both
interpreters have: ints, floats and ``math.ceil``. No typing imports.

::

    T_sym      = 2^SF / BW
    T_preamble = (n_preamble + 4.25) * T_sym
    n_payload  = 8 + max(ceil((8PL - 4SF + 28 + 16CRC - 20IH) / (4(SF - 2DE))) * (CR + 4), 0)
    T_packet   = T_preamble + n_payload * T_sym

PL is the PHY payload length in bytes (the whole FogPark frame), CR is 1..4
for coding rates 4/5..4/8 (this module takes the denominator, 5..8), IH is 1
for implicit header mode, DE is 1 when LowDataRateOptimize is on, which
SX127x drivers (and LoRaWAN) switch on when T_sym >= 16 ms.

Published checks: a 12-byte payload, SF7, 125 kHz, CR 4/5, 8-symbol
preamble, explicit header, CRC on: 41.216 ms; the same at SF12: 1155.072 ms.
"""

import math

# Bandwidths the SX1276 offers, in Hz, in RegModemConfig1 order (codes 0..9).
BANDWIDTHS_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
# LowDataRateOptimize is mandated when a symbol lasts this long or longer.
LDRO_SYMBOL_S = 0.016


def symbol_time_s(sf: int, bw_hz: int) -> float:
    """Duration of one LoRa symbol in seconds."""
    return (1 << sf) / bw_hz


def low_data_rate_optimize(sf: int, bw_hz: int) -> bool:
    """True when LowDataRateOptimize must be on (symbol time >= 16 ms)."""
    return symbol_time_s(sf, bw_hz) >= LDRO_SYMBOL_S


def _check(payload_len: int, sf: int, bw_hz: int, cr: int, preamble: int) -> None:
    if not 0 <= payload_len <= 255:
        raise ValueError("payload length must be 0..255 bytes, got " + str(payload_len))
    if not 6 <= sf <= 12:
        raise ValueError("spreading factor must be 6..12, got " + str(sf))
    if bw_hz <= 0:
        raise ValueError("bandwidth must be positive, got " + str(bw_hz))
    if not 5 <= cr <= 8:
        raise ValueError("coding rate must be 5..8 (4/5..4/8), got " + str(cr))
    if not 6 <= preamble <= 65535:
        raise ValueError("preamble must be 6..65535 symbols, got " + str(preamble))


def payload_symbols(
    payload_len: int,
    sf: int = 7,
    bw_hz: int = 125000,
    cr: int = 5,
    explicit_header: bool = True,
    crc: bool = True,
    ldro: bool | None = None,
) -> int:
    """Number of payload symbols (including the 8 fixed ones)."""
    if ldro is None:
        ldro = low_data_rate_optimize(sf, bw_hz)
    de = 1 if ldro else 0
    ih = 0 if explicit_header else 1
    num = 8 * payload_len - 4 * sf + 28 + 16 * (1 if crc else 0) - 20 * ih
    den = 4 * (sf - 2 * de)
    n = math.ceil(num / den) * cr  # (CR + 4) where CR = cr - 4
    if n < 0:
        n = 0
    return 8 + n


def time_on_air_s(
    payload_len: int,
    sf: int = 7,
    bw_hz: int = 125000,
    cr: int = 5,
    preamble: int = 8,
    explicit_header: bool = True,
    crc: bool = True,
    ldro: bool | None = None,
) -> float:
    """Time on air of one packet in seconds.

    ``cr`` is the coding-rate denominator (5 for 4/5 ... 8 for 4/8); ``ldro``
    None means "as the driver sets it": on when a symbol lasts >= 16 ms.
    """
    _check(payload_len, sf, bw_hz, cr, preamble)
    t_sym = symbol_time_s(sf, bw_hz)
    n_payload = payload_symbols(payload_len, sf, bw_hz, cr, explicit_header, crc, ldro)
    return (preamble + 4.25) * t_sym + n_payload * t_sym


def time_on_air_ms(
    payload_len: int,
    sf: int = 7,
    bw_hz: int = 125000,
    cr: int = 5,
    preamble: int = 8,
    explicit_header: bool = True,
    crc: bool = True,
    ldro: bool | None = None,
) -> float:
    """Time on air of one packet in milliseconds."""
    return 1000.0 * time_on_air_s(payload_len, sf, bw_hz, cr, preamble, explicit_header, crc, ldro)


def time_on_air_us(
    payload_len: int,
    sf: int = 7,
    bw_hz: int = 125000,
    cr: int = 5,
    preamble: int = 8,
    explicit_header: bool = True,
    crc: bool = True,
) -> int:
    """Time on air rounded up to whole microseconds (for integer budgets)."""
    return math.ceil(1e6 * time_on_air_s(payload_len, sf, bw_hz, cr, preamble, explicit_header, crc))


def off_time_s(toa_s: float, duty_cycle: float = 0.01) -> float:
    """Silence needed after a packet of ``toa_s`` to stay within ``duty_cycle``."""
    if not 0 < duty_cycle <= 1:
        raise ValueError("duty cycle must be in (0, 1], got " + str(duty_cycle))
    return toa_s / duty_cycle - toa_s


def max_packets_per_hour(toa_s: float, duty_cycle: float = 0.01) -> int:
    """How many packets of ``toa_s`` fit in one hour at ``duty_cycle``."""
    if toa_s <= 0:
        raise ValueError("time on air must be positive")
    if not 0 < duty_cycle <= 1:
        raise ValueError("duty cycle must be in (0, 1], got " + str(duty_cycle))
    return int(3600.0 * duty_cycle / toa_s)
