"""The API against an in-memory model (Hypothesis stateful); concurrent writers on PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import AppFactory, upgrade
from tests.plugins.tasks.conftest import PROJECTS, Caller, People, make_people
from tests.services import temporary_postgres_database

TITLES = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40
)
LABELS = st.lists(st.sampled_from(["a", "b", "bug", "docs"]), max_size=3)


class TasksAgainstModel(RuleBasedStateMachine):
    """Random create/patch/delete sequences; the API and a dict must always agree."""

    tasks = Bundle("tasks")

    def __init__(self, caller: Caller) -> None:
        super().__init__()
        self.caller = caller
        self.project = caller.project("model")
        self.model: dict[int, dict[str, Any]] = {}

    def path(self, task_id: int) -> str:
        return f"{PROJECTS}/{self.project}/tasks/{task_id}"

    @rule(target=tasks, title=TITLES, priority=st.integers(1, 5), labels=LABELS)
    def create(self, title: str, priority: int, labels: list[str]) -> int:
        body = self.caller.task(self.project, title=title, priority=priority, labels=labels)
        self.model[body["id"]] = {
            "title": title,
            "status": "open",
            "priority": priority,
            "labels": sorted(set(labels)),
        }
        return int(body["id"])

    @rule(
        task=tasks,
        status=st.sampled_from(["open", "in_progress", "done"]),
        priority=st.integers(1, 5),
    )
    def patch(self, task: int, status: str, priority: int) -> None:
        got = self.caller.get(self.path(task))
        if task not in self.model:
            assert got.status_code == 404
            return
        response = self.caller.patch(
            self.path(task),
            {"status": status, "priority": priority},
            **{"If-Match": got.headers["ETag"]},
        )
        assert response.status_code == 200
        self.model[task].update(status=status, priority=priority)
        stale = self.caller.patch(
            self.path(task), {"title": "lost"}, **{"If-Match": got.headers["ETag"]}
        )
        assert stale.status_code == 412  # the second writer with the old ETag changes nothing

    @rule(task=tasks)
    def delete(self, task: int) -> None:
        response = self.caller.delete(self.path(task), **{"If-Match": "*"})
        assert response.status_code == (204 if task in self.model else 404)
        self.model.pop(task, None)

    @invariant()
    def api_matches_model(self) -> None:
        listed = self.caller.get(
            f"{PROJECTS}/{self.project}/tasks?page_size=100&sort=id"
        ).get_json()
        seen = {
            t["id"]: {k: t[k] for k in ("title", "status", "priority", "labels")} for t in listed
        }
        assert seen == self.model


def test_api_agrees_with_a_model(people: People) -> None:
    run_state_machine_as_test(
        lambda: TasksAgainstModel(people.owner),
        settings=settings(max_examples=15, stateful_step_count=10, deadline=None),
    )


def test_twenty_concurrent_patches_with_one_etag_on_postgres(make_app: AppFactory) -> None:
    with temporary_postgres_database() as url:
        # 20 requests at once in one process need 20 connections (each request holds one);
        # gunicorn's 4 threads per worker never do.
        app = make_app(DATABASE_URL=url, DATABASE_POOL_SIZE=25)
        upgrade(app)
        people = make_people(app)
        project = people.owner.project()
        task = people.owner.task(project, title="original")
        path = f"{PROJECTS}/{project}/tasks/{task['id']}"
        tag = people.owner.get(path).headers["ETag"]
        start = threading.Barrier(20)
        results: dict[int, int] = {}

        def writer(index: int) -> None:
            client = app.test_client()
            start.wait(10)
            response = client.patch(
                path,
                json={"title": f"writer {index}"},
                headers={**people.owner.headers(), "If-Match": tag},
            )
            results[index] = response.status_code

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        winners = [i for i, status in results.items() if status == 200]
        assert len(results) == 20
        assert len(winners) == 1
        assert sorted(results.values()) == [200] + [412] * 19
        final = people.owner.get(path)
        assert final.get_json()["title"] == f"writer {winners[0]}"  # the winner's change, intact
        assert final.headers["ETag"] == tag.replace('-1"', '-2"')  # exactly one update happened
        app.extensions["powerstrip.database"].engine.dispose()


ROUNDS = 5


def test_concurrent_adds_of_one_member_never_fail_on_postgres(make_app: AppFactory) -> None:
    """20 owners' requests adding one member at once, 5 rounds: each answers 200 (the add,
    or the role change when another add committed first) or 409 (an add that lost the race
    at the primary key); never a 5xx; one membership row results."""
    with temporary_postgres_database() as url:
        app = make_app(DATABASE_URL=url, DATABASE_POOL_SIZE=25, RATELIMIT_ENABLED=False)
        upgrade(app)
        people = make_people(app)
        statuses: list[int] = []
        for _ in range(ROUNDS):
            project = people.owner.project()
            path = f"{PROJECTS}/{project}/members/{people.alice.user_id}"
            start = threading.Barrier(20)
            answers: list[int] = []

            def adder(
                path: str = path, start: threading.Barrier = start, answers: list[int] = answers
            ) -> None:
                client = app.test_client()
                start.wait(10)
                response = client.put(path, json={"role": "editor"}, headers=people.owner.headers())
                answers.append(response.status_code)

            threads = [threading.Thread(target=adder) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert len(answers) == 20
            assert set(answers) <= {200, 409}, answers
            assert 200 in answers
            members = people.owner.get(f"{PROJECTS}/{project}/members").get_json()
            assert [m["principal"] for m in members].count(people.alice.user_id) == 1
            statuses += answers
        assert len(statuses) == 20 * ROUNDS
        app.extensions["powerstrip.database"].engine.dispose()
