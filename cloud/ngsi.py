"""Lots and spots as FIWARE Smart Data Models (``OffStreetParking``, ``ParkingSpot``) in NGSI-LD JSON.

Normalised NGSI-LD: every attribute is a Property / GeoProperty / Relationship
object, entity ids are URNs (``urn:ngsi-ld:OffStreetParking:<lot>``,
``urn:ngsi-ld:ParkingSpot:<lot>:<spot>``), and each entity carries its
``@context`` (the NGSI-LD core context and the Smart Data Models parking
context) so a context broker can take the JSON as is (``application/ld+json``).

Required by the schemas (dataModel.Parking): OffStreetParking — id, type,
location; ParkingSpot — id, type, location, status, category, refParkingSite.
The cloud knows a lot's position from its config and a spot's lot, not the
spot's own coordinates, so a spot's location is its lot's (stated in the
entity's ``description``). A lot without lat/lon in the config cannot be
exported (GeoJSON needs WGS84): it is listed in ``skipped`` with the reason.
Nothing personal (plates, cards, bookings) is exported.
"""

from __future__ import annotations

from typing import Any

from cloud.config import CloudConfig
from cloud.timeparse import format_ms

NGSI_LD_CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
PARKING_CONTEXT = "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld"
CONTEXT = [PARKING_CONTEXT, NGSI_LD_CORE]
TYPES = ("OffStreetParking", "ParkingSpot")
_SPOT_STATUS = {"occupied": "occupied", "empty": "free", "unknown": "unknown"}


def lot_urn(lot_id: str) -> str:
    return f"urn:ngsi-ld:OffStreetParking:{lot_id}"


def spot_urn(lot_id: str, spot_id: str) -> str:
    return f"urn:ngsi-ld:ParkingSpot:{lot_id}:{spot_id}"


def _prop(value: Any, observed_ms: int | None = None, unit: str | None = None) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "Property", "value": value}
    if observed_ms is not None:
        prop["observedAt"] = format_ms(observed_ms)
    if unit is not None:
        prop["unitCode"] = unit
    return prop


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}  # GeoJSON: lon, lat


def entities(
    config: CloudConfig, city_rows: list[dict[str, Any]], spot_rows: list[dict[str, Any]], *,
    entity_type: str | None = None, lot_id: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(entities, skipped) for the lots of the city view and the spots the cloud has seen.

    ``city_rows``: `Operations.city().rows`; ``spot_rows``: `CloudStore.spot_states()`.
    """
    out: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    exportable: dict[str, tuple[float, float]] = {}
    for lot in city_rows:
        if lot_id is not None and lot["lot_id"] != lot_id:
            continue
        place = config.lots.get(lot["lot_id"])
        if place is None or place.lat is None or place.lon is None:
            skipped.append({"id": lot_urn(lot["lot_id"]), "reason": "no lat/lon for this lot in the cloud config"})
            continue
        exportable[lot["lot_id"]] = (place.lat, place.lon)
        if entity_type not in (None, "OffStreetParking"):
            continue
        entity: dict[str, Any] = {
            "id": lot_urn(lot["lot_id"]), "type": "OffStreetParking",
            "name": _prop(lot["name"]), "location": _point(place.lat, place.lon),
            "category": _prop(["parkingLot", "feeCharged"]),
            "allowedVehicleType": _prop(["car"]),
            "chargeType": _prop(["temporaryPrice"]),
            "occupancyDetectionType": _prop(["singleSpaceDetection"]),
        }
        observed = lot["updated_ms"]
        if lot["capacity"] is not None:
            entity["totalSpotNumber"] = _prop(lot["capacity"])
            entity["availableSpotNumber"] = _prop(lot["free"], observed)
            entity["occupancy"] = _prop(lot["concentration"], observed)
            entity["status"] = _prop(["spacesAvailable" if lot["free"] else "full"], observed)
        if lot["price_per_hour"] is not None:
            entity["priceRatePerMinute"] = _prop(round(lot["price_per_hour"] / 60, 6), observed)
            entity["priceCurrency"] = _prop(lot["currency"])
        if observed is not None:
            entity["dateObserved"] = _prop({"@type": "DateTime", "@value": format_ms(observed)})
        entity["@context"] = CONTEXT
        out.append(entity)
    if entity_type in (None, "ParkingSpot"):
        for spot in spot_rows:
            position = exportable.get(spot["lot_id"])
            if position is None:
                continue
            out.append({
                "id": spot_urn(spot["lot_id"], spot["spot_id"]), "type": "ParkingSpot",
                "name": _prop(spot["spot_id"]),
                "description": _prop("location is the parking site's; the cloud does not hold spot coordinates"),
                "location": _point(*position),
                "status": _prop(_SPOT_STATUS.get(spot["state"], "unknown"), spot["at_ms"]),
                "category": _prop(["offStreet"]),
                "refParkingSite": {"type": "Relationship", "object": lot_urn(spot["lot_id"])},
                "@context": CONTEXT,
            })
    return out, skipped
