"""Each role behind one interface (installer/roles.py): shared code names no role package and
compares no role name, and one role's code alone, as its .deb ships it, does a whole setup."""
import ast
import shutil
import subprocess
import sys

import pytest

from unitdata import REPO

from installer import ROLES

ANSWERS = {
    "bridge": 'role = "bridge"\n[bridge]\npublic_interface = "lo"\npublic_address = "203.0.113.7"\n',
    "homelab": 'role = "homelab"\n[homelab]\nendpoint = "203.0.113.7:51820"\ndocker_subnets = []\n',
}
OTHER = {"bridge": "homelab", "homelab": "bridge"}


def shared_modules():
    return sorted((REPO / "installer").rglob("*.py"))


def imported_role_packages(paths) -> list[str]:
    """file:line package of each import of a role package in these files."""
    role_packages = {f"cgnat_{role}" for role in ROLES}
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(REPO)}:{node.lineno} {name.split('.')[0]}" for name in names
                      if name.split(".")[0] in role_packages]
    return found


def test_shared_code_imports_no_role_package():
    assert imported_role_packages(shared_modules()) == []


@pytest.mark.parametrize("role", ROLES)
def test_a_role_package_imports_no_other_role(role):
    found = imported_role_packages(sorted((REPO / f"cgnat_{role}").rglob("*.py")))
    assert [f for f in found if not f.endswith(f" cgnat_{role}")] == []


def role_names_in(source: str) -> list[int]:
    """The lines where code names a role: a comparison with one (`== "bridge"`, `in ("bridge",
    "homelab")`), a default (`setdefault("role", "homelab")`), a key, any string that is one;
    but the one list of the roles, `ROLES = (...)` (installer/__init__.py)."""
    tree = ast.parse(source)
    the_list = {id(node) for assign in ast.walk(tree) if isinstance(assign, ast.Assign)
                and [getattr(t, "id", None) for t in assign.targets] == ["ROLES"]
                for node in ast.walk(assign.value)}
    return sorted({node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant)
                   and node.value in ROLES and id(node) not in the_list})


def test_shared_code_does_not_branch_on_a_role_name():
    found = [f"{path.relative_to(REPO)}:{line}" for path in shared_modules()
             for line in role_names_in(path.read_text())]
    assert found == []


@pytest.mark.parametrize("code", ['role == "bridge"', 'role in ("bridge", "homelab")',
                                  'data.setdefault("role", "homelab")', 'STEPS = {"homelab": []}',
                                  'x = role if role != "bridge" else None', 'OTHER = ("bridge",)'])
def test_the_guard_catches_every_way_of_naming_a_role(code):
    assert role_names_in(code) == [1]


def run_alone(role, tmp_path, *args):
    """cgnat-setup from a tree holding the shared code and this role's package only."""
    tree = tmp_path / "python"
    skip = shutil.ignore_patterns("__pycache__", "hooks")
    for package in ("installer", f"cgnat_{role}"):
        shutil.copytree(REPO / package, tree / package, ignore=skip, dirs_exist_ok=True)
    program = ("import sys; from installer.cli import main; code = main(sys.argv[1:]); "
               "print('loaded:', *sorted({m.split('.')[0] for m in sys.modules if m.startswith('cgnat_')})); "
               "sys.exit(code)")
    return subprocess.run([sys.executable, "-c", program, *map(str, args)], cwd=tree,
                          capture_output=True, text=True)


@pytest.mark.root     # the bridge reads this host's sshd (sshd -T)
@pytest.mark.parametrize("role", ROLES)
def test_one_role_alone_sets_up_a_host_and_reports(role, tmp_path):
    answers = tmp_path / "answers.toml"
    answers.write_text(ANSWERS[role])
    root = tmp_path / "root"
    done = run_alone(role, tmp_path, "--answers", answers, "--root", root)
    assert done.returncode == 0, done.stderr
    assert f"{role} configured" in done.stdout and "Pairing token: cgnat" in done.stdout
    assert done.stdout.splitlines()[-1] == f"loaded: cgnat_{role}"
    assert (root / "etc/cgnat/wg0.rules").is_file() and (root / "etc/wireguard/wg0.conf").is_file()
    status = run_alone(role, tmp_path, "status", "--root", root)
    assert f"cgnat {role} wg0:" in status.stdout, status.stderr
    assert status.stdout.splitlines()[-1] == f"loaded: cgnat_{role}"


@pytest.mark.parametrize("role", ROLES)
def test_the_other_roles_answers_are_refused_where_its_package_is_absent(role, tmp_path):
    answers = tmp_path / "answers.toml"
    answers.write_text(ANSWERS[OTHER[role]])
    done = run_alone(role, tmp_path, "--check", "--answers", answers)
    assert done.returncode == 2
    assert (f"{answers}: role: is '{OTHER[role]}', but this host has no cgnat-{OTHER[role]} package "
            f"(installed: cgnat-{role})") in done.stderr
