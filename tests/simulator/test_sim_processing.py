"""Asynchronous import: pending then processed, duplicates, invalid numbers, download-number,
callback data, and the paged number listing."""

import time
from datetime import datetime, timedelta

import pytest


def imported_phones(env, task_id=None):
    return [n["phone"] for n in env.sim.task_numbers(env.user_id, task_id or env.task_id)]


def download(env, unique_id):
    payload = env.callback(unique_id).json()["data"]
    # The link is built from the Host the client used; fetch it without a token.
    return env.request("GET", payload["data"]["url"].removeprefix(env.sim.base_url), token=None)


def test_import_is_pending_then_processed(sim_env):
    unique_id = sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    pending = sim_env.callback(unique_id)
    assert pending.status_code == 200
    assert pending.json() == {"code": 200, "status": "success", "message": "success", "data": []}
    assert sim_env.sim.batches()[0]["status"] == "pending"
    assert imported_phones(sim_env) == []

    batches = sim_env.sim.wait_until_processed(timeout=5)
    assert batches[0]["status"] == "processed"
    assert batches[0]["imported"] == 1
    payload = sim_env.callback(unique_id).json()["data"]
    assert payload["mode"] == "batch"
    assert payload["type"] == "api_customer_to_task"
    assert payload["unique_id"] == unique_id
    assert payload["user_id"] == sim_env.user_id
    assert payload["task_id"] == sim_env.task_id
    url = payload["data"]["url"]
    assert url.startswith(f"{sim_env.sim.base_url}/agent-api/download-number?key=")
    assert imported_phones(sim_env) == ["13012121211"]


def test_callback_url_follows_the_host_header(sim_env):
    unique_id = sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.sim.process()
    response = sim_env.callback(unique_id, headers={"Host": "white-label.example:8443"})
    url = response.json()["data"]["data"]["url"]
    assert url.startswith("http://white-label.example:8443/agent-api/download-number?key=")


def test_processing_waits_for_the_process_delay(sim_env):
    sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    batch = sim_env.sim.wait_until_processed(timeout=5)[0]
    received = datetime.fromisoformat(batch["received_at"])
    processed = datetime.fromisoformat(batch["processed_at"])
    assert processed - received >= timedelta(seconds=0.19)  # default delay is 0.2 s


def test_download_lists_the_imported_numbers_of_that_batch_in_row_order(sim_env):
    first = sim_env.accepted_unique_id(sim_env.rows("13900000003", "13900000001"))
    second = sim_env.accepted_unique_id(sim_env.rows("13900000002"))
    sim_env.sim.process()
    response = download(sim_env, first)
    assert response.status_code == 200
    assert response.json() == {"numbers": ["13900000003", "13900000001"]}
    assert download(sim_env, second).json() == {"numbers": ["13900000002"]}


def test_download_with_unknown_key_is_404(sim_env):
    response = sim_env.get("/agent-api/download-number", params={"key": "bm9wZQ=="})
    assert response.status_code == 404


def test_duplicates_within_one_batch_first_occurrence_wins(sim_env):
    rows = [
        {"phone": "13012121211", "sort": 0, "extra": "first"},
        {"phone": "13012121212", "sort": 0},
        {"phone": "13012121211", "sort": 0, "extra": "second"},
    ]
    unique_id = sim_env.accepted_unique_id(rows)
    sim_env.sim.process()
    numbers = sim_env.sim.task_numbers(sim_env.user_id, sim_env.task_id)
    assert [(n["phone"], n.get("extra")) for n in numbers] == [
        ("13012121211", "first"),
        ("13012121212", None),
    ]
    assert download(sim_env, unique_id).json()["numbers"] == ["13012121211", "13012121212"]


def test_duplicates_across_batches_first_batch_wins(sim_env):
    first = sim_env.accepted_unique_id(
        [{"phone": "13012121211", "sort": 0, "extra": "lead-1"}, *sim_env.rows("13012121212")]
    )
    second = sim_env.accepted_unique_id(
        [{"phone": "13012121211", "sort": 0, "extra": "lead-2"}, *sim_env.rows("13012121213")]
    )
    sim_env.sim.wait_until_processed(timeout=5)
    numbers = sim_env.sim.task_numbers(sim_env.user_id, sim_env.task_id)
    phones = [n["phone"] for n in numbers]
    assert sorted(phones) == sorted(set(phones)) == ["13012121211", "13012121212", "13012121213"]
    assert numbers[0]["extra"] == "lead-1"
    assert numbers[0]["unique_id"] == first
    assert download(sim_env, second).json()["numbers"] == ["13012121213"]


def test_same_phone_may_be_imported_into_another_task(sim_env):
    other = sim_env.sim.create_task(sim_env.user_id)
    sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.accepted_unique_id(sim_env.rows("13012121211"), task_id=other)
    sim_env.sim.process()
    assert imported_phones(sim_env) == imported_phones(sim_env, other) == ["13012121211"]


INVALID_PHONES = [
    "",
    "1301212121",  # 10 digits
    "130121212111",  # 12 digits
    "12012121211",  # second digit 2
    "23012121211",  # does not start with 1
    "+8613012121211",
    "130-1212-1211",
    "１３０１２１２１２１１",  # full-width digits
    "1301212121a",
]


def test_invalid_numbers_are_silently_not_imported(sim_env):
    unique_id = sim_env.accepted_unique_id(sim_env.rows(*INVALID_PHONES, "13012121211"))
    batch = sim_env.sim.wait_until_processed(timeout=5)[0]
    assert batch["rows"] == len(INVALID_PHONES) + 1
    assert batch["imported"] == 1
    assert imported_phones(sim_env) == ["13012121211"]
    assert download(sim_env, unique_id).json() == {"numbers": ["13012121211"]}


def test_phone_is_trimmed_before_the_checks(sim_env):
    sim_env.accepted_unique_id(sim_env.rows(" 13012121211\t", "13012121211"))
    sim_env.sim.process()
    assert imported_phones(sim_env) == ["13012121211"]


def test_encrypted_phones_are_imported_as_sent(sim_env):
    unique_id = sim_env.accepted_unique_id(
        sim_env.rows("q8Zx+ciphertext==", "q8Zx+ciphertext==", " "), encryption=True
    )
    sim_env.sim.process()
    assert download(sim_env, unique_id).json() == {"numbers": ["q8Zx+ciphertext=="]}


def test_imported_number_keeps_the_row_fields(sim_env):
    row = {
        "phone": "13012121211",
        "sort": 0,
        "name": "张三",
        "extra": "lead-42",
        "company": "xxx公司",
        "sex": 1,
        "components": [{"id": "c1", "value": "v"}],
    }
    unique_id = sim_env.accepted_unique_id([row])
    sim_env.sim.process()
    (number,) = sim_env.sim.task_numbers(sim_env.user_id, sim_env.task_id)
    assert {k: number[k] for k in row} == row
    assert number["unique_id"] == unique_id
    assert datetime.fromisoformat(number["imported_at"])


def test_unknown_unique_id_is_404(sim_env):
    response = sim_env.callback("f2c7aa27-55be-4b96-835b-18cf38edd29e")
    assert response.status_code == 404
    assert response.json()["code"] == 404
    assert response.json()["status"] == "error"


def test_unique_id_of_another_user_is_404(sim_env):
    unique_id = sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    other_user = sim_env.sim.create_user()
    assert sim_env.callback(unique_id, user_id=other_user).status_code == 404


# --- task number listing ------------------------------------------------------------------


def number_page(env, **params):
    response = env.get(f"/agent-api/user/{env.user_id}/task/{env.task_id}/number", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.fixture
def task_with_45_numbers(sim_env):
    phones = [f"1350000{i:04d}" for i in range(45)]
    sim_env.accepted_unique_id(
        [
            {"phone": p, "sort": 0, "extra": f"lead-{i}", "name": f"n{i}"}
            for i, p in enumerate(phones)
        ]
    )
    sim_env.sim.process()
    return sim_env, phones


def test_numbers_default_page(task_with_45_numbers):
    env, phones = task_with_45_numbers
    page = number_page(env)
    assert (page["current_page"], page["per_page"], page["total"], page["last_page"]) == (
        1,
        20,
        45,
        3,
    )
    assert [n["phone"] for n in page["data"]] == phones[:20]
    first = page["data"][0]
    assert set(first) == {"phone", "extra", "name", "unique_id", "status", "created_at"}
    assert (first["extra"], first["name"], first["status"]) == ("lead-0", "n0", 1)
    assert datetime.strptime(first["created_at"], "%Y-%m-%d %H:%M:%S")


def test_numbers_paging(task_with_45_numbers):
    env, phones = task_with_45_numbers
    last = number_page(env, page=3, per_page=20)
    assert [n["phone"] for n in last["data"]] == phones[40:]
    assert last["last_page"] == 3
    middle = number_page(env, page=2, per_page=7)
    assert [n["phone"] for n in middle["data"]] == phones[7:14]
    assert middle["last_page"] == 7
    assert number_page(env, page=9)["data"] == []
    everything = number_page(env, per_page=1000)
    assert [n["phone"] for n in everything["data"]] == phones
    assert everything["last_page"] == 1


def test_numbers_keep_their_page_fields_by_default(task_with_45_numbers):
    env, _ = task_with_45_numbers
    page = number_page(env, page=2, per_page=20)
    assert set(page) == {"current_page", "per_page", "total", "last_page", "data"}
    assert env.sim.journal()[-1]["fault"] is None


def test_omit_page_fields_leaves_only_the_rows(task_with_45_numbers):
    env, phones = task_with_45_numbers
    env.sim.set_faults(omit_page_fields=True)
    pages = [number_page(env, page=page, per_page=20) for page in (1, 2, 3, 4)]
    assert all(set(page) == {"data"} for page in pages)
    assert [n["phone"] for page in pages for n in page["data"]] == phones
    assert pages[-1]["data"] == []
    assert env.sim.journal()[-1]["fault"] == "omit_page_fields"


def test_ignore_page_answers_the_first_page_every_time(task_with_45_numbers):
    env, phones = task_with_45_numbers
    env.sim.set_faults(ignore_page=True, omit_page_fields=True)
    for page in (1, 2, 9):
        assert [n["phone"] for n in number_page(env, page=page)["data"]] == phones[:20]
    assert env.sim.journal()[-1]["fault"] == "omit_page_fields+ignore_page"


def test_numbers_of_an_empty_task(sim_env):
    page = number_page(sim_env)
    assert (page["total"], page["last_page"], page["data"]) == (0, 1, [])


@pytest.mark.parametrize(
    "params",
    [{"per_page": 1001}, {"per_page": 0}, {"page": 0}, {"page": "x"}, {"start_at": "2024-01-01"}],
)
def test_numbers_bad_query_is_422(sim_env, params):
    path = f"/agent-api/user/{sim_env.user_id}/task/{sim_env.task_id}/number"
    response = sim_env.get(path, params=params)
    assert response.status_code == 422
    assert response.json()["code"] == 422


def test_numbers_status_filter(task_with_45_numbers):
    env, _ = task_with_45_numbers
    assert number_page(env, **{"status[]": ["1", "3"]})["total"] == 45
    assert number_page(env, **{"status[]": "2"})["total"] == 0


def test_numbers_time_filter(sim_env):
    sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.sim.process()
    time.sleep(1.05)  # the filter has one-second resolution
    sim_env.accepted_unique_id(sim_env.rows("13012121212"))
    sim_env.sim.process()
    first, second = number_page(sim_env)["data"]
    assert first["created_at"] < second["created_at"]
    only_second = number_page(sim_env, start_at=second["created_at"])
    assert [n["phone"] for n in only_second["data"]] == ["13012121212"]
    only_first = number_page(sim_env, end_at=first["created_at"])
    assert [n["phone"] for n in only_first["data"]] == ["13012121211"]
    both = number_page(sim_env, start_at=first["created_at"], end_at=second["created_at"])
    assert both["total"] == 2


def test_numbers_time_filter_pages_within_the_window(sim_env):
    """A bounded read pages through the window's numbers only: totals, page fields and rows
    are those of the window, whatever was imported before and after it."""
    groups = []
    for first in (100, 200, 300):
        phones = [f"1350000{first + i:04d}" for i in range(5)]
        sim_env.accepted_unique_id(sim_env.rows(*phones))
        sim_env.sim.process()
        groups.append(phones)
        time.sleep(1.05)  # the filter has one-second resolution
    created = [number_page(sim_env, per_page=1000)["data"][i]["created_at"] for i in (0, 5, 10)]
    assert len(set(created)) == 3
    window = {"start_at": created[1], "end_at": created[1], "per_page": 2}
    pages = [number_page(sim_env, page=page, **window) for page in (1, 2, 3, 4)]
    assert [n["phone"] for page in pages for n in page["data"]] == groups[1]
    assert [len(page["data"]) for page in pages] == [2, 2, 1, 0]
    assert {(page["total"], page["last_page"]) for page in pages} == {(5, 3)}
    from_middle = number_page(sim_env, start_at=created[1], per_page=1000)
    assert [n["phone"] for n in from_middle["data"]] == groups[1] + groups[2]


# --- number list faults: a capped per_page, an empty page in the middle ----------------------


def test_max_per_page_caps_every_page_and_says_so(task_with_45_numbers):
    env, phones = task_with_45_numbers
    env.sim.set_faults(max_per_page=20)
    pages = [number_page(env, page=page, per_page=1000) for page in (1, 2, 3)]
    assert [len(page["data"]) for page in pages] == [20, 20, 5]
    assert [n["phone"] for page in pages for n in page["data"]] == phones
    fields = [(p["current_page"], p["per_page"], p["total"], p["last_page"]) for p in pages]
    assert fields == [(1, 20, 45, 3), (2, 20, 45, 3), (3, 20, 45, 3)]
    assert env.sim.journal()[-1]["fault"] == "max_per_page"
    # Under the cap, per_page is honoured and the fault does not show.
    small = number_page(env, page=2, per_page=7)
    assert (small["per_page"], [n["phone"] for n in small["data"]]) == (7, phones[7:14])
    assert env.sim.journal()[-1]["fault"] is None


def test_max_per_page_without_page_fields_answers_only_the_capped_rows(task_with_45_numbers):
    env, phones = task_with_45_numbers
    env.sim.set_faults(max_per_page=20, omit_page_fields=True)
    pages = [number_page(env, page=page, per_page=100) for page in (1, 2, 3, 4)]
    assert all(set(page) == {"data"} for page in pages)
    assert [len(page["data"]) for page in pages] == [20, 20, 5, 0]
    assert [n["phone"] for page in pages for n in page["data"]] == phones
    assert env.sim.journal()[-1]["fault"] == "omit_page_fields+max_per_page"


def test_empty_page_at_answers_that_page_empty_although_it_holds_rows(task_with_45_numbers):
    env, phones = task_with_45_numbers
    env.sim.set_faults(empty_page_at=2)
    first, second, third = (number_page(env, page=page, per_page=20) for page in (1, 2, 3))
    assert second["data"] == []
    assert (second["current_page"], second["total"], second["last_page"]) == (2, 45, 3)
    assert [n["phone"] for n in first["data"] + third["data"]] == phones[:20] + phones[40:]
    assert [e["fault"] for e in env.sim.journal()[-3:]] == [None, "empty_page_at", None]
    # A page that is empty anyway is no fault.
    env.sim.set_faults(empty_page_at=4)
    assert number_page(env, page=4, per_page=20)["data"] == []
    assert env.sim.journal()[-1]["fault"] is None


def test_page_faults_are_off_by_default_and_take_positive_integers(sim_env):
    defaults = sim_env.sim.faults()
    assert (defaults["max_per_page"], defaults["empty_page_at"]) == (None, None)
    config = sim_env.sim.set_faults(max_per_page=100, empty_page_at=None)
    assert (config["max_per_page"], config["empty_page_at"]) == (100, None)
    for bad in ({"max_per_page": 0}, {"max_per_page": 1.5}, {"empty_page_at": True}):
        response = sim_env.request("PUT", "/_sim/faults", token=None, json=bad)
        assert response.status_code == 400, bad
        assert "positive integer" in response.json()["error"]


# --- the list's time order, which bounded reads rely on ------------------------------------


def test_imports_never_go_back_in_time_and_bounded_reads_find_them_by_bisection(monkeypatch):
    from agent_api_simulator import processing
    from agent_api_simulator.state import Batch, SimState, Task, User

    state = SimState()
    task = Task("t", "u", "name", 2, 0, None)
    state.users["u"] = User("u", tasks={"t": task})
    clock = iter([1000.4, 1000.9, 999.0, 1002.0])  # the host clock steps back once
    monkeypatch.setattr(processing.time, "time", lambda: next(clock))
    for phone in ("13500000001", "13500000002", "13500000003", "13500000004"):
        batch = Batch("b-" + phone, "u", "t", None, [{"phone": phone}], False, 0.0, 0.0)
        processing.import_batch(state, batch)
    assert [n.imported_at for n in task.numbers] == [1000.4, 1000.9, 1000.9, 1002.0]
    assert task.imported_between(None, None) == (0, 4)
    assert task.imported_between(1000, 1000) == (0, 3)
    assert task.imported_between(1001, None) == (3, 4)
    assert task.imported_between(None, 999) == (0, 0)
    assert task.imported_between(1003, 1005) == (4, 4)
