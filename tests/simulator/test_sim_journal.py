"""The journal records every platform request, rejected and faulted ones included."""

import json

import requests


def test_journal_records_accepted_rejected_and_faulted_requests(sim_env):
    start = sim_env.sim.journal()
    assert start == []
    good = sim_env.rows("13012121211")
    unique_id = sim_env.accepted_unique_id(good, ignore_crm=True)
    sim_env.post_numbers([{"phone": "13012121211"}])  # 422
    sim_env.post_numbers(good, token=None)  # 401
    sim_env.sim.set_faults(rate_429=1.0)
    sim_env.get("/agent-api/token")  # 429
    sim_env.sim.set_faults()
    sim_env.get(
        f"/agent-api/user/{sim_env.user_id}/task/{sim_env.task_id}/number",
        params={"page": 2, "status[]": ["1", "2"]},
    )

    entries = sim_env.sim.journal()
    import_path = f"/agent-api/user/{sim_env.user_id}/task/{sim_env.task_id}/async_number"
    summary = [(e["method"], e["path"], e["status"], e["code"], e["fault"]) for e in entries]
    assert summary == [
        ("POST", import_path, 200, 200, None),
        ("POST", import_path, 422, 422, None),
        ("POST", import_path, 401, 401, None),
        ("GET", "/agent-api/token", 429, 429, "rate_429"),
        ("GET", f"/agent-api/user/{sim_env.user_id}/task/{sim_env.task_id}/number", 200, 200, None),
    ]
    assert entries[0]["body"] == {"ignore_crm": True, "data": good}
    assert entries[1]["body"] == {"data": [{"phone": "13012121211"}]}
    assert entries[3]["body"] is None
    assert entries[4]["query"] == {"page": "2", "status[]": ["1", "2"]}
    assert [e["seq"] for e in entries] == sorted(e["seq"] for e in entries)
    assert len({e["seq"] for e in entries}) == len(entries)
    assert all(isinstance(e["time"], float) for e in entries)
    assert unique_id not in json.dumps(entries[0]["body"])


def test_journal_never_stores_the_token(sim_env):
    sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.get("/agent-api/token", token="some-wrong-token")
    dump = json.dumps(sim_env.sim.journal())
    assert sim_env.sim.token not in dump
    assert "some-wrong-token" not in dump
    assert "Authorization" not in dump


def test_journal_since_and_last_seq(sim_env):
    for _ in range(3):
        sim_env.get("/agent-api/token")
    everything = requests.get(sim_env.url("/_sim/journal"), timeout=5).json()
    first_seq = everything["entries"][0]["seq"]
    assert everything["last_seq"] == first_seq + 2
    later = sim_env.sim.journal(since=first_seq)
    assert [e["seq"] for e in later] == [first_seq + 1, first_seq + 2]
    assert sim_env.sim.journal(since=first_seq + 2) == []


def test_journal_keeps_counting_across_a_reset(sim_env):
    sim_env.get("/agent-api/token")
    before = sim_env.sim.journal()[-1]["seq"]
    sim_env.sim.reset()
    assert sim_env.sim.journal() == []
    sim_env.get("/agent-api/token")
    (entry,) = sim_env.sim.journal(since=before)
    assert entry["seq"] == before + 1


def test_admin_routes_are_not_journaled(sim_env):
    sim_env.sim.batches()
    sim_env.sim.process()
    sim_env.sim.set_faults()
    assert sim_env.sim.journal() == []


def test_download_and_malformed_bodies_are_journaled(sim_env):
    sim_env.get("/agent-api/download-number", token=None, params={"key": "k=="})
    path = f"/agent-api/user/{sim_env.user_id}/task/{sim_env.task_id}/async_number"
    sim_env.request("POST", path, data=b"{oops", headers={"Content-Type": "application/json"})
    download, malformed = sim_env.sim.journal()
    assert (download["status"], download["code"], download["query"]) == (404, 404, {"key": "k=="})
    assert (malformed["status"], malformed["body"]) == (422, None)
