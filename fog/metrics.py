"""The fog's Prometheus metrics, one registry per daemon (tests run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CYCLE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.5)


class FogMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.frames_received = Counter("fogpark_frames_received", "Frames handed to the fog", ["gateway"], registry=r)
        self.frames_accepted = Counter("fogpark_frames_accepted", "Frames accepted and committed", ["type"], registry=r)
        self.frames_refused = Counter("fogpark_frames_refused", "Frames refused, by reason", ["reason"], registry=r)
        self.frames_duplicate = Counter("fogpark_frames_duplicate", "Same frame via another gateway", registry=r)
        self.link_errors = Counter("fogpark_link_errors",
                                   "Ingest link errors (damaged serial packets, radio CRC errors, MQTT faults)",
                                   ["link", "reason"], registry=r)
        self.cycle_seconds = Histogram("fogpark_cycle_seconds", "Duration of each cycle's work",
                                       buckets=CYCLE_BUCKETS, registry=r)
        self.cycle_overruns = Counter("fogpark_cycle_overruns", "Cycles whose work exceeded the period", registry=r)
        self.cycles_skipped = Counter("fogpark_cycles_skipped", "Cycle slots missed because a cycle ran long",
                                      registry=r)
        self.commit_seconds = Histogram("fogpark_commit_seconds", "Duration of each store commit (a group of cycles)",
                                        buckets=CYCLE_BUCKETS, registry=r)
        self.commit_lag_seconds = Histogram("fogpark_commit_lag_seconds",
                                            "From a cycle's changes applied to their commit being durable",
                                            buckets=CYCLE_BUCKETS, registry=r)
        self.commit_backpressure = Counter("fogpark_commit_backpressure",
                                           "Cycles that took no frames because too many commits were in flight",
                                           registry=r)
        self.queue_depth = Gauge("fogpark_ingest_queue_depth", "Frames waiting for the next cycle", registry=r)
        self.outbox_depth = Gauge("fogpark_outbox_depth", "Records waiting for the cloud", registry=r)
        self.sync_lag = Gauge("fogpark_sync_lag_seconds", "Age of the oldest record not yet acknowledged",
                              registry=r)
        self.acked_seq = Gauge("fogpark_sync_acked_seq", "Highest sequence the cloud acknowledged", registry=r)
        self.store_bytes = Gauge("fogpark_store_bytes", "Bytes the SQLite store uses (pages in use)", registry=r)
        self.disk_free_bytes = Gauge("fogpark_disk_free_bytes", "Free bytes on the store's filesystem", registry=r)
        self.events_compacted = Counter("fogpark_events_compacted",
                                        "Old spot events folded into daily summaries under disk pressure",
                                        registry=r)
        self.spots = Gauge("fogpark_spots", "Spots by state", ["state"], registry=r)
        self.cloud_configs = Counter("fogpark_cloud_configs", "Lot and tariff files from the cloud, by outcome",
                                     ["kind", "outcome"], registry=r)
        self.lot_switch_seconds = Gauge("fogpark_lot_switch_seconds",
                                        "How long the last live lot switch held the cycle", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
