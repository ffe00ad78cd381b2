"""Random and mutated answers files never crash cgnat-setup and never write a file."""
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from installer import answers as answers_toml
from installer.errors import InvalidAnswers
from installer.validate import load_answers

VALID = {
    "role": "homelab", "interface": "wg0", "tunnel": "10.0.0.0/24", "listen_port": 51820,
    "homelab": {"endpoint": "203.0.113.7:51820", "keepalive": 25, "docker_subnets": ["172.19.0.0/16"],
                "watchdog": {"check_host": "example.org", "action": "reboot"}},
}
scalars = st.one_of(st.integers(-2**40, 2**40), st.booleans(), st.text(max_size=20),
                    st.lists(st.text(max_size=8), max_size=3), st.floats(allow_nan=False))
keys = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12)


def mutate(data, path, value):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
    node[path[-1]] = value
    return data


@given(st.lists(st.sampled_from(["role", "interface", "tunnel", "listen_port", "homelab", "endpoint",
                                 "keepalive", "docker_subnets", "watchdog", "action", "bridge"]) | keys,
                min_size=1, max_size=3), scalars)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_answers_are_either_valid_or_rejected_with_keys(path, value):
    data = mutate(VALID, path, value)
    try:
        answers = load_answers(data, None, None)
    except InvalidAnswers as invalid:
        assert invalid.problems and all(p.key and p.message for p in invalid.problems)
    else:
        assert answers.role in ("bridge", "homelab")
        # A valid answers object saves to TOML that loads back to the same answers.
        again = load_answers(answers_toml.parse_toml(answers_toml.to_toml(answers)), None, None)
        assert again == answers


@given(st.text(max_size=300))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_files_never_crash_and_never_write(tmp_path_factory, text):
    from clihelp import cgnat_setup
    root = tmp_path_factory.mktemp("root")
    done = cgnat_setup("--answers", "-", "--root", root, stdin=text)
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr
    assert not any(root.iterdir())
