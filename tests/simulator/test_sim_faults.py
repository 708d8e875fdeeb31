"""Every fault mode of /_sim/faults, and that the same seed replays the same faults."""

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests


def hit_token_route(env, count):
    """Fire `count` sequential GET /agent-api/token; return the HTTP statuses."""
    with requests.Session() as session:
        session.headers.update(env.sim.auth_headers)
        url = env.url("/agent-api/token")
        return [session.get(url, timeout=5).status_code for _ in range(count)]


def last_import_entry(env):
    return [e for e in env.sim.journal() if e["path"].endswith("/async_number")][-1]


def test_fault_config_round_trips_and_resets(sim_env):
    config = sim_env.sim.set_faults(seed=9, error_rate=0.25, rate_429=0.1, retry_after=4)
    assert sim_env.sim.faults() == config
    assert (config["seed"], config["error_rate"], config["retry_after"]) == (9, 0.25, 4)
    assert (config["lost_answer_delay"], config["expired_token"]) == (30.0, False)
    assert (config["omit_page_fields"], config["ignore_page"]) == (False, False)
    assert config["hold_accepted_answers"] == 0
    sim_env.sim.reset()
    after = sim_env.sim.faults()
    assert (after["error_rate"], after["rate_429"], after["rate_limit_rps"]) == (0.0, 0.0, None)


@pytest.mark.parametrize(
    "config",
    [
        {"error_rat": 0.1},
        {"error_rate": 1.5},
        {"rate_429": -0.1},
        {"expired_token": 1},
        {"omit_page_fields": 1},
        {"ignore_page": "yes"},
        {"forget_callbacks": 1},
        {"expire_download_links": "true"},
        {"hold_accepted_answers": -1},
        {"hold_accepted_answers": 1.5},
        {"hold_accepted_answers": True},
        {"hold_accepted_answers": "1"},
        [1],
    ],
)
def test_bad_fault_config_is_refused(sim_env, config):
    response = requests.put(sim_env.url("/_sim/faults"), json=config, timeout=5)
    assert response.status_code == 400
    assert "error" in response.json()


def test_faults_never_touch_admin_routes(sim_env):
    sim_env.sim.set_faults(error_rate=1.0, rate_limit_rps=0.001, expired_token=True)
    for _ in range(5):
        assert sim_env.sim.batches() == []


def test_server_errors_follow_the_rate_and_use_500_502_503(sim_env):
    sim_env.sim.set_faults(seed=3, error_rate=0.5)
    statuses = hit_token_route(sim_env, 200)
    errors = Counter(s for s in statuses if s != 200)
    assert set(errors) == {500, 502, 503}
    assert 70 <= sum(errors.values()) <= 130
    entries = sim_env.sim.journal()
    faulted = [e for e in entries if e["fault"] == "error_rate"]
    assert len(faulted) == sum(errors.values())
    assert all(e["code"] == e["status"] for e in faulted)


def test_server_error_comes_before_accepting_anything(sim_env):
    sim_env.sim.set_faults(error_rate=1.0)
    response = sim_env.post_numbers(sim_env.rows("13012121211"))
    assert response.status_code in (500, 502, 503)
    assert response.json()["code"] == response.status_code
    assert response.json()["status"] == "error"
    assert sim_env.sim.batches() == []


def test_429_with_retry_after(sim_env):
    sim_env.sim.set_faults(rate_429=1.0, retry_after=3)
    response = sim_env.post_numbers(sim_env.rows("13012121211"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["code"] == 429
    assert sim_env.sim.batches() == []
    sim_env.sim.set_faults(rate_429=1.0)
    assert sim_env.get("/agent-api/token").headers["Retry-After"] == "1"


def test_rate_limit_rps_token_bucket(sim_env):
    sim_env.sim.set_faults(rate_limit_rps=5)
    statuses = hit_token_route(sim_env, 20)
    assert 5 <= statuses.count(200) <= 6
    assert statuses[:5] == [200] * 5
    limited = sim_env.get("/agent-api/token")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert sim_env.sim.journal()[-1]["fault"] == "rate_limit"
    time.sleep(1.1)  # the bucket refills at 5 tokens per second
    assert hit_token_route(sim_env, 4) == [200] * 4


def test_lost_answer_records_the_batch_although_the_client_times_out(sim_env):
    sim_env.sim.set_faults(lost_answer_rate=1.0, lost_answer_delay=1.5)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        sim_env.post_numbers(sim_env.rows("13012121211"), timeout=0.5)
    assert time.monotonic() - started < 1.4
    (batch,) = sim_env.sim.wait_until_processed(timeout=5)
    assert batch["imported"] == 1
    assert [n["phone"] for n in sim_env.sim.task_numbers(sim_env.user_id, sim_env.task_id)] == [
        "13012121211"
    ]
    entry = last_import_entry(sim_env)
    assert (entry["status"], entry["code"], entry["fault"]) == (200, 200, "lost_answer")


def test_lost_answer_eventually_answers_a_patient_client(sim_env):
    sim_env.sim.set_faults(lost_answer_rate=1.0, lost_answer_delay=1.0)
    started = time.monotonic()
    response = sim_env.post_numbers(sim_env.rows("13012121211"), timeout=5)
    assert time.monotonic() - started >= 1.0
    assert response.json()["code"] == 200


def test_lost_answer_only_delays_accepted_imports(sim_env):
    sim_env.sim.set_faults(lost_answer_rate=1.0, lost_answer_delay=5)
    assert sim_env.get("/agent-api/token", timeout=1).status_code == 200
    rejected = sim_env.post_numbers([{"phone": "13012121211"}], timeout=1)
    assert rejected.status_code == 422


def wait_until_held(env, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while env.sim.held() != count:
        assert time.monotonic() < deadline, f"{env.sim.held()} answers held, not {count}"
        time.sleep(0.02)


def test_a_held_answer_arrives_only_after_release_and_its_import_was_accepted(sim_env):
    sim_env.sim.set_faults(hold_accepted_answers=1)
    with ThreadPoolExecutor(1) as pool:
        # A read timeout shorter than the hold: the held answer keeps the client reading.
        answer = pool.submit(sim_env.post_numbers, sim_env.rows("13012121211"), timeout=1.5)
        wait_until_held(sim_env, 1)
        (batch,) = sim_env.sim.wait_until_processed(timeout=5)
        assert (batch["status"], batch["imported"]) == ("processed", 1)
        assert [n["phone"] for n in sim_env.sim.task_numbers(sim_env.user_id, sim_env.task_id)] == [
            "13012121211"
        ]
        entry = last_import_entry(sim_env)
        assert (entry["status"], entry["code"], entry["fault"]) == (200, 200, "hold_answer")
        time.sleep(2)
        assert not answer.done(), answer.exception()
        assert sim_env.sim.release() == 1
        response = answer.result(timeout=5)
    assert response.status_code == 200
    assert response.json()["data"]["unique_id"] == batch["unique_id"]
    assert sim_env.sim.held() == 0


def test_holding_answers_refuses_every_further_import_with_429_until_release(sim_env):
    sim_env.sim.set_faults(hold_accepted_answers=2, retry_after=3)
    with ThreadPoolExecutor(2) as pool:
        answers = [
            pool.submit(sim_env.post_numbers, sim_env.rows(phone))
            for phone in ("13012121211", "13012121212")
        ]
        wait_until_held(sim_env, 2)
        refused = sim_env.post_numbers(sim_env.rows("13012121213"))
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "3"
        assert last_import_entry(sim_env)["fault"] == "hold_429"
        assert len(sim_env.sim.batches()) == 2
        assert sim_env.get("/agent-api/token").status_code == 200  # imports only
        assert sim_env.sim.release() == 2
        assert [a.result(timeout=5).status_code for a in answers] == [200, 200]
    # Released: imports are accepted and answered at once again.
    sim_env.accepted_unique_id(sim_env.rows("13012121213"), timeout=2)
    assert len(sim_env.sim.batches()) == 3
    assert sim_env.sim.held() == 0


def test_refused_imports_are_not_held(sim_env):
    sim_env.sim.set_faults(hold_accepted_answers=1)
    assert sim_env.post_numbers([{"phone": "13012121211"}], timeout=2).status_code == 422
    assert sim_env.sim.held() == 0
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(sim_env.post_numbers, sim_env.rows("13012121211"))
        wait_until_held(sim_env, 1)
        sim_env.sim.release()
        assert answer.result(timeout=5).json()["code"] == 200


def test_a_new_fault_config_or_a_reset_sends_held_answers(sim_env):
    for replace in (sim_env.sim.set_faults, sim_env.sim.reset):
        sim_env.sim.set_faults(hold_accepted_answers=1)
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(sim_env.post_numbers, sim_env.rows("13012121211"))
            wait_until_held(sim_env, 1)
            replace()
            assert answer.result(timeout=5).status_code == 200
        assert sim_env.sim.held() == 0
        sim_env.user_id = sim_env.sim.create_user()
        sim_env.task_id = sim_env.sim.create_task(sim_env.user_id)


def test_callback_never_keeps_the_batch_pending(sim_env):
    sim_env.sim.set_faults(callback_never_rate=1.0)
    unique_id = sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.sim.process()
    time.sleep(0.4)  # well past the process delay
    (batch,) = sim_env.sim.wait_until_processed(timeout=1)
    assert (batch["status"], batch["callback_never"]) == ("pending", True)
    assert sim_env.callback(unique_id).json()["data"] == []
    assert sim_env.sim.task_numbers(sim_env.user_id, sim_env.task_id) == []
    assert last_import_entry(sim_env)["fault"] == "callback_never"


def test_callback_never_does_not_block_later_batches(sim_env):
    sim_env.sim.set_faults(callback_never_rate=1.0)
    sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.sim.set_faults()
    sim_env.accepted_unique_id(sim_env.rows("13012121212"))
    statuses = [b["status"] for b in sim_env.sim.wait_until_processed(timeout=5)]
    assert statuses == ["pending", "processed"]


def test_forgotten_callbacks_answer_not_found_for_a_processed_batch(sim_env):
    unique_id = sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.sim.wait_until_processed(timeout=5)
    sim_env.sim.set_faults(forget_callbacks=True)
    answer = sim_env.callback(unique_id).json()
    assert answer["code"] == 404 and answer["status"] == "error"
    entry = [e for e in sim_env.sim.journal() if "/identification/" in e["path"]][-1]
    assert entry["fault"] == "forget_callbacks"
    sim_env.sim.set_faults()
    assert sim_env.callback(unique_id).json()["data"]["unique_id"] == unique_id


def test_expired_download_links_answer_not_found(sim_env):
    unique_id = sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.sim.wait_until_processed(timeout=5)
    url = sim_env.callback(unique_id).json()["data"]["data"]["url"]
    sim_env.sim.set_faults(expire_download_links=True)
    expired = requests.get(url, timeout=5)
    assert expired.status_code == 404 and "numbers" not in expired.json()
    sim_env.sim.set_faults()
    assert requests.get(url, timeout=5).json() == {"numbers": ["13012121211"]}


def test_slow_callbacks(sim_env):
    sim_env.sim.set_faults(callback_delay=1.0)
    unique_id = sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    time.sleep(0.5)
    assert sim_env.callback(unique_id).json()["data"] == []
    (batch,) = sim_env.sim.wait_until_processed(timeout=5)
    waited = datetime.fromisoformat(batch["processed_at"]) - datetime.fromisoformat(
        batch["received_at"]
    )
    assert waited.total_seconds() >= 0.99
    assert sim_env.callback(unique_id).json()["data"]["unique_id"] == unique_id
    assert last_import_entry(sim_env)["fault"] == "callback_delay"


def test_batches_are_processed_in_arrival_order_even_when_delays_differ(sim_env):
    sim_env.sim.set_faults(callback_delay=0.6)
    sim_env.accepted_unique_id([{"phone": "13012121211", "sort": 0, "extra": "first"}])
    sim_env.sim.set_faults(callback_delay=0.0)
    sim_env.accepted_unique_id([{"phone": "13012121211", "sort": 0, "extra": "second"}])
    sim_env.sim.wait_until_processed(timeout=5)
    (number,) = sim_env.sim.task_numbers(sim_env.user_id, sim_env.task_id)
    assert number["extra"] == "first"


def fault_sequence(env, **config):
    env.sim.set_faults(**config)
    statuses = hit_token_route(env, 60)
    return statuses, [e["fault"] for e in env.sim.journal()[-60:]]


def test_same_seed_gives_the_same_faults_across_a_reset(sim_env):
    config = {"seed": 42, "error_rate": 0.3, "rate_429": 0.2}
    first = fault_sequence(sim_env, **config)
    sim_env.sim.reset()
    second = fault_sequence(sim_env, **config)
    assert first == second
    assert {"error_rate", "rate_429", None} <= set(first[1])
    other = fault_sequence(sim_env, **{**config, "seed": 43})
    assert other != first
