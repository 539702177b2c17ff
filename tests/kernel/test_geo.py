import json
import math
import random

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from civic.kernel.geo import (
    EARTH_RADIUS_M,
    Area,
    BoundingBox,
    FixedIndex,
    GeoError,
    MovingIndex,
    Placed,
    Point,
    bearing_deg,
    destination,
    feature,
    feature_collection,
    fire_water_facilities_path,
    haversine_m,
    line_string,
    load_fire_water_facilities,
)
from tests.conftest import SHARED_DATA

SEOUL_CITY_HALL = Point(37.5663, 126.9779)
BUSAN_CITY_HALL = Point(35.1798, 129.0750)
SONGPA = Point(37.5145, 127.1059)


def random_points(rng: random.Random, n: int, centre: Point, spread_deg: float) -> list[Placed]:
    return [
        Placed(
            f"p{i}",
            Point(
                centre.lat + rng.uniform(-spread_deg, spread_deg),
                centre.lon + rng.uniform(-spread_deg, spread_deg),
            ),
            {"usable": i % 3 != 0, "n": i},
        )
        for i in range(n)
    ]


def brute_nearest(points: list[Placed], query: Point, k: int, within=math.inf, where=None):
    found = sorted(
        (haversine_m(query, p.point), p.key) for p in points if where is None or where(p.attributes)
    )
    return [key for distance, key in found if distance <= within][:k]


# Points, distances, bearings


def test_seoul_to_busan_city_halls_is_about_325_km() -> None:
    assert haversine_m(SEOUL_CITY_HALL, BUSAN_CITY_HALL) == pytest.approx(325_050, abs=500)
    assert SEOUL_CITY_HALL.distance_to(BUSAN_CITY_HALL) == haversine_m(
        BUSAN_CITY_HALL, SEOUL_CITY_HALL
    )


def test_known_distances_on_the_sphere() -> None:
    one_degree = haversine_m(Point(0, 0), Point(1, 0))
    assert one_degree == pytest.approx(math.pi * EARTH_RADIUS_M / 180)
    assert haversine_m(Point(0, 0), Point(0, 90)) == pytest.approx(math.pi * EARTH_RADIUS_M / 2)
    assert haversine_m(Point(90, 0), Point(-90, 0)) == pytest.approx(math.pi * EARTH_RADIUS_M)
    assert haversine_m(Point(0, 179.9), Point(0, -179.9)) == pytest.approx(0.2 * one_degree)
    assert haversine_m(SONGPA, SONGPA) == 0


def test_bearings() -> None:
    assert bearing_deg(Point(0, 0), Point(1, 0)) == pytest.approx(0)
    assert bearing_deg(Point(0, 0), Point(0, 1)) == pytest.approx(90)
    assert bearing_deg(Point(0, 0), Point(-1, 0)) == pytest.approx(180)
    assert bearing_deg(Point(0, 0), Point(0, -1)) == pytest.approx(270)
    assert bearing_deg(SEOUL_CITY_HALL, BUSAN_CITY_HALL) == pytest.approx(144.1, abs=0.1)


def test_destination_walks_back_to_a_known_point() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = Point(rng.uniform(-80, 80), rng.uniform(-180, 180))
        b = Point(rng.uniform(-80, 80), rng.uniform(-180, 180))
        reached = destination(a, bearing_deg(a, b), haversine_m(a, b))
        assert haversine_m(reached, b) < 0.01
    assert destination(Point(0, 179.5), 90, 111_195 * 1.0).lon == pytest.approx(-179.5, abs=1e-3)
    with pytest.raises(GeoError):
        destination(SONGPA, 10, -1)


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        (math.nan, 127.0, "finite"),
        (37.5, math.inf, "finite"),
        (91, 0, "outside -90..90"),
        (0, 180.5, "outside -180..180"),
        ("north", 0, "number of degrees"),
        (True, 0, "number of degrees"),
        (None, 0, "number of degrees"),
    ],
)
def test_bad_coordinates_are_refused_with_a_reason(lat, lon, message) -> None:
    with pytest.raises(GeoError, match=message):
        Point(lat, lon)


def test_swapped_latitude_and_longitude_are_named() -> None:
    with pytest.raises(GeoError, match=r"look swapped \(lat=37.5, lon=127.0\?\)"):
        Point(127.0, 37.5)


def test_points_validate_inside_pydantic_models_and_geojson() -> None:
    class Incident(BaseModel):
        place: Point

    assert Incident.model_validate({"place": {"lat": 37.5, "lon": 127}}).place == Point(37.5, 127)
    with pytest.raises(ValidationError, match="swapped"):
        Incident.model_validate({"place": {"lat": 127, "lon": 37.5}})
    assert Point(37.5, 127).to_geojson() == {"type": "Point", "coordinates": [127.0, 37.5]}
    assert Point.from_geojson(feature(Point(37.5, 127))) == Point(37.5, 127)
    with pytest.raises(GeoError, match="GeoJSON Point"):
        Point.from_geojson({"type": "LineString", "coordinates": []})
    with pytest.raises(GeoError, match=r"\[lon, lat\]"):
        Point.from_lonlat([1])


def test_bounding_boxes() -> None:
    rng = random.Random(3)
    for centre in (SONGPA, Point(0, 179.99), Point(89.9, 10), Point(-60, -179.9)):
        box = BoundingBox.around(centre, 5_000)
        for _ in range(300):
            inside = destination(centre, rng.uniform(0, 360), rng.uniform(0, 5_000))
            assert box.contains(inside), (centre, inside, box)
    tight = BoundingBox.around(SONGPA, 500)
    assert not tight.contains(destination(SONGPA, 45, 800))
    assert BoundingBox.of([SONGPA, SEOUL_CITY_HALL]).contains(Point(37.54, 127.0))
    assert haversine_m(BoundingBox(0, 170, 1, -170).centre, Point(0.5, 180)) < 1e-6
    with pytest.raises(GeoError, match="above north"):
        BoundingBox(10, 0, 0, 1)


# Areas


def test_areas_from_geojson_with_holes_and_edges() -> None:
    square = [[127.0, 37.0], [128.0, 37.0], [128.0, 38.0], [127.0, 38.0], [127.0, 37.0]]
    hole = [[127.4, 37.4], [127.6, 37.4], [127.6, 37.6], [127.4, 37.6], [127.4, 37.4]]
    area = Area.from_coordinates([square, hole])
    assert area.contains(Point(37.2, 127.2))
    assert not area.contains(Point(37.5, 127.5))  # in the hole
    assert area.contains(Point(37.0, 127.5))  # on the edge
    assert not area.contains(Point(36.9, 127.5))
    assert Area.from_geojson(area.to_geojson()).contains(Point(37.2, 127.2))
    json.dumps(area.to_geojson())
    assert area.bbox.as_list() == [127.0, 37.0, 128.0, 38.0]
    assert area.area_m2 == pytest.approx(0.96 * 111_195**2 * math.cos(math.radians(37.5)), 0.01)
    corners = [Point(37, 127), Point(37, 128), Point(38, 128)]
    assert Area.from_points(corners).contains(Point(37.2, 127.9))


@pytest.mark.parametrize(
    ("geojson", "message"),
    [
        ({"type": "Point", "coordinates": [0, 0]}, "Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "valid"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [0, 1], [0, 0]]]}, "WGS84"),
        ({"type": "Polygon", "coordinates": "nonsense"}, "malformed|valid|empty"),
        ({"type": "Feature", "geometry": None}, "no geometry"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
    ],
)
def test_bad_areas_are_refused_with_a_reason(geojson, message) -> None:
    with pytest.raises(GeoError, match=message):
        Area.from_geojson(geojson)


def test_circles_are_geofences() -> None:
    fence = Area.circle(SONGPA, 300)
    for bearing in range(0, 360, 15):
        assert fence.contains(destination(SONGPA, bearing, 290))
        assert not fence.contains(destination(SONGPA, bearing, 310))
    with pytest.raises(GeoError):
        Area.circle(SONGPA, 0)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared data folder is absent")
def test_province_boundaries_hold_their_city_halls() -> None:
    provinces = json.loads((SHARED_DATA / "geo" / "kr_provinces_2013.geojson").read_text())
    by_name = {f["properties"]["name"]: Area.from_geojson(f) for f in provinces["features"]}
    assert by_name["서울특별시"].contains(SEOUL_CITY_HALL)
    assert not by_name["서울특별시"].contains(BUSAN_CITY_HALL)
    assert by_name["부산광역시"].contains(BUSAN_CITY_HALL)
    korea = Area.from_geojson(provinces)
    assert korea.contains(SONGPA) and not korea.contains(Point(39.0, 125.7))  # Pyongyang


def test_geojson_helpers() -> None:
    line = line_string([SONGPA, SEOUL_CITY_HALL])
    assert line == {
        "type": "LineString",
        "coordinates": [[SONGPA.lon, SONGPA.lat], [SEOUL_CITY_HALL.lon, SEOUL_CITY_HALL.lat]],
    }
    hit = FixedIndex([Placed("h1", SONGPA, {"usable": True})]).nearest(SEOUL_CITY_HALL)[0]
    assert hit.to_geojson() == {
        "type": "Feature",
        "geometry": SONGPA.to_geojson(),
        "properties": {"usable": True, "distance_m": round(hit.distance_m, 2)},
        "id": "h1",
    }
    assert Placed("p", SONGPA).to_geojson()["properties"] == {}
    collection = feature_collection([feature(SONGPA, {"name": "송파"}, id="s")])
    assert collection["features"][0] == {
        "type": "Feature",
        "geometry": SONGPA.to_geojson(),
        "properties": {"name": "송파"},
        "id": "s",
    }


# The index of fixed points


@pytest.fixture(scope="module")
def seoul_points() -> list[Placed]:
    return random_points(random.Random(11), 3_000, SONGPA, 0.05)


@pytest.fixture(scope="module")
def seoul_index(seoul_points) -> FixedIndex:
    return FixedIndex(seoul_points)


def test_nearest_and_radius_equal_brute_force(seoul_points, seoul_index) -> None:
    rng = random.Random(5)
    usable = lambda attributes: attributes["usable"]  # noqa: E731
    for _ in range(60):
        query = Point(SONGPA.lat + rng.uniform(-0.06, 0.06), SONGPA.lon + rng.uniform(-0.06, 0.06))
        hits = seoul_index.nearest(query, 5)
        assert [h.key for h in hits] == brute_nearest(seoul_points, query, 5)
        assert [h.distance_m for h in hits] == sorted(h.distance_m for h in hits)
        assert hits[0].distance_m == pytest.approx(haversine_m(query, hits[0].point))
        filtered = seoul_index.nearest(query, 7, within_m=400, where=usable)
        assert [h.key for h in filtered] == brute_nearest(seoul_points, query, 7, 400, usable)
        radius = seoul_index.within_radius(query, 500)
        assert [h.key for h in radius] == brute_nearest(seoul_points, query, 10_000, 500)
        assert all(h.distance_m <= 500 for h in radius)
        limited = seoul_index.within_radius(query, 800, where=usable, limit=3)
        assert [h.key for h in limited] == brute_nearest(seoul_points, query, 3, 800, usable)


def test_within_area_equals_brute_force(seoul_points, seoul_index) -> None:
    fence = Area.circle(SONGPA, 2_500)
    triangle = Area.from_points([Point(37.47, 127.06), Point(37.55, 127.10), Point(37.49, 127.15)])
    for area in (fence, triangle):
        expected = sorted(p.key for p in seoul_points if area.contains(p.point))
        assert expected
        assert [p.key for p in seoul_index.within_area(area)] == expected
        usable = [p.key for p in seoul_index.within_area(area, where=lambda a: a["usable"])]
        assert usable == [k for k in expected if int(k[1:]) % 3 != 0]


def test_the_index_is_exact_across_the_antimeridian_and_at_the_poles() -> None:
    rng = random.Random(17)
    points = [
        Placed(f"a{i}", Point(rng.uniform(-1, 1), (rng.uniform(178.5, 181.5) + 180) % 360 - 180))
        for i in range(500)
    ] + random_points(rng, 200, Point(89.0, 0), 0.9)
    index = FixedIndex(points)
    for query in (Point(0, 180), Point(0.3, -179.8), Point(89.95, 100), Point(90, 0)):
        assert [h.key for h in index.nearest(query, 8)] == brute_nearest(points, query, 8)
        assert [h.key for h in index.within_radius(query, 60_000)] == brute_nearest(
            points, query, 10_000, 60_000
        )


def test_index_edge_cases() -> None:
    empty = FixedIndex()
    assert empty.nearest(SONGPA, 3) == [] and empty.within_radius(SONGPA, 10) == []
    assert empty.within_area(Area.circle(SONGPA, 100)) == []
    one = FixedIndex([Placed("a", SONGPA)])
    assert [h.key for h in one.nearest(SONGPA, 5)] == ["a"]
    assert one.nearest(SEOUL_CITY_HALL, 1, within_m=100) == []
    assert one.get("a") == Placed("a", SONGPA) and "a" in one and one.get("b") is None
    one.set_attributes("a", {"usable": False})
    assert one.nearest(SONGPA, 1)[0].attributes == {"usable": False}
    with pytest.raises(GeoError, match="appears twice"):
        FixedIndex([Placed("a", SONGPA), Placed("a", SEOUL_CITY_HALL)])
    with pytest.raises(GeoError, match="k must be"):
        one.nearest(SONGPA, 0)
    with pytest.raises(GeoError, match="radius"):
        one.within_radius(SONGPA, -1)
    with pytest.raises(GeoError, match="swapped"):
        FixedIndex.from_arrays(["a", "b"], np.array([37.5, 127.1]), np.array([127.1, 37.5]))
    with pytest.raises(GeoError, match="differ in length"):
        FixedIndex.from_arrays(["a"], [1.0, 2.0], [1.0, 2.0])


# The index of moving points


def test_moving_index_matches_brute_force_after_many_moves() -> None:
    rng = random.Random(23)
    index = MovingIndex()
    where: dict[str, Point] = {}
    for step in range(6_000):
        key = f"unit-{rng.randrange(400)}"
        if step % 50 == 0 and key in where:
            assert index.remove(key)
            del where[key]
            continue
        previous = where.get(key, SONGPA)
        moved = destination(previous, rng.uniform(0, 360), rng.expovariate(1 / 300))
        if rng.random() < 0.02:
            moved = Point(SONGPA.lat + rng.uniform(-0.3, 0.3), SONGPA.lon + rng.uniform(-0.3, 0.3))
        index.update(key, moved, {"kind": "ambulance" if step % 2 else "fire_engine"})
        where[key] = moved
    assert len(index) == len(where)
    points = [Placed(k, p, index.get(k).attributes) for k, p in where.items()]
    engines = lambda a: a["kind"] == "fire_engine"  # noqa: E731
    for _ in range(40):
        query = Point(SONGPA.lat + rng.uniform(-0.2, 0.2), SONGPA.lon + rng.uniform(-0.2, 0.2))
        assert [h.key for h in index.nearest(query, 5)] == brute_nearest(points, query, 5)
        assert [h.key for h in index.nearest(query, 3, within_m=1_500, where=engines)] == (
            brute_nearest(points, query, 3, 1_500, engines)
        )
        assert [h.key for h in index.within_radius(query, 2_000)] == brute_nearest(
            points, query, 10_000, 2_000
        )


def test_moving_index_keeps_attributes_wraps_and_validates() -> None:
    index = MovingIndex(cell_deg=0.5)
    index.move("east", 0.0, 179.9, {"kind": "boat"})
    index.move("west", 0.0, -179.9)
    index.move("east", 0.1, 179.95)
    assert index.get("east").attributes == {"kind": "boat"}
    assert [h.key for h in index.within_radius(Point(0, 180), 20_000)] == ["west", "east"]
    assert [h.key for h in index.nearest(Point(0, -179.99), 2)] == ["west", "east"]
    assert index.nearest(Point(0, 0), 1, within_m=1_000) == []
    assert not index.remove("nobody") and index.remove("west") and "west" not in index
    assert [p.key for p in index.items()] == ["east"]
    with pytest.raises(GeoError, match="finite"):
        index.move("bad", math.nan, 127.0)
    with pytest.raises(GeoError, match="swapped"):
        index.move("bad", 127.0, 37.5)
    assert "bad" not in index
    assert MovingIndex().nearest(SONGPA, 3) == []


# Real data


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared data folder is absent")
def test_songpa_fire_water_facilities_load() -> None:
    path = fire_water_facilities_path(SHARED_DATA)
    assert path is not None
    loaded = load_fire_water_facilities(path)
    assert (len(loaded.points), loaded.skipped) == (3_817, 0)
    first = loaded.points[0]
    assert first.key == "110083413"
    assert first.point == Point(37.51322012606922, 127.10497529818711)
    assert first.attributes["kind"] == "소화전" and first.attributes["usable"] is True
    assert all(BoundingBox(37.4, 126.9, 37.6, 127.2).contains(p.point) for p in loaded.points)
    assert sum(not p.attributes["usable"] for p in loaded.points) == 49 + 7


def test_bad_rows_are_skipped_and_counted(tmp_path) -> None:
    header = "순번,일련번호,사용구분,경위도X,경위도Y\n"
    rows = [
        "1,A1,양호,127.1,37.5",
        "2,,양호,127.1,37.5",
        "3,A3,양호,,37.5",
        "4,A4,양호,37.5,127.1",
        "5,A5,고장(사용불),nan,37.5",
        "6,A1,양호,127.2,37.4",
        "7,A7,임시폐전,127.11,37.51",
    ]
    (tmp_path / "opendata").mkdir()
    path = tmp_path / "opendata" / "songpa_fire_water_facilities.csv"
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    assert fire_water_facilities_path(tmp_path) == path
    loaded = load_fire_water_facilities(path)
    assert [p.key for p in loaded.points] == ["A1", "A7"]
    assert loaded.points[1].attributes["usable"] is False
    assert loaded.skipped == 5
    assert "swapped" in loaded.problems[2] and "appears twice" in loaded.problems[4]
    assert fire_water_facilities_path(None) is None
