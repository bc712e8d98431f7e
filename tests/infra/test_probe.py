"""zongzhi.probe: the exec probes of the worker Deployments, against real servers."""

from __future__ import annotations

import os
import subprocess
import sys

from zongzhi.servers import free_port


def probe(*names: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zongzhi.probe", *names], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_worker_is_ready_when_its_database_and_nats_answer(database_url: str,
                                                            nats_url: str) -> None:
    env = {**os.environ, "ZONGZHI_DATABASE_URL": database_url, "ZONGZHI_NATS_URL": nats_url}
    done = probe("postgres", "nats", env=env)
    assert done.returncode == 0, done.stderr


def test_a_worker_is_not_ready_when_a_server_does_not_answer_and_the_probe_says_which(
        database_url: str) -> None:
    # given a NATS address nothing listens on
    env = {**os.environ, "ZONGZHI_DATABASE_URL": database_url,
           "ZONGZHI_NATS_URL": f"nats://127.0.0.1:{free_port()}",
           "ZONGZHI_TRITON_URL": f"127.0.0.1:{free_port()}"}
    # then the probe fails, naming the server
    done = probe("postgres", "nats", env=env)
    assert done.returncode == 1
    assert "nats at 127.0.0.1" in done.stderr and "does not answer" in done.stderr
    done = probe("triton", env=env)
    assert done.returncode == 1 and "triton" in done.stderr
    # and a database that refuses the connection is named too
    bad = {**env, "ZONGZHI_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/x"}
    done = probe("postgres", env=bad)
    assert done.returncode == 1 and "postgres does not answer" in done.stderr


def test_the_probe_refuses_an_unset_url_and_an_unknown_server() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONGZHI_")}
    done = probe("postgres", env=env)
    assert done.returncode == 1 and "ZONGZHI_DATABASE_URL is not set" in done.stderr
    done = probe("redis", env=env)
    assert done.returncode == 2 and "unknown: redis" in done.stderr
    done = probe(env=env)
    assert done.returncode == 2 and "name one or more of postgres, nats, triton" in done.stderr
