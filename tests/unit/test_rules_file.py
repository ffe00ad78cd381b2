"""installer/rules_file.py: our chains' names, and reading a rules file as the hooks do."""
import pytest

from installer.rules_file import BUILTINS, builtin_of, chain_name, declared_chains

LONGEST = "a-b.c=d_e-f-g-h"   # 15 characters, the kernel's limit, "-" included


@pytest.mark.parametrize("builtin", sorted(BUILTINS.values()))
def test_names_fit_iptables_and_give_their_builtin_back(builtin):
    name = chain_name(LONGEST, builtin)
    assert len(LONGEST) == 15 and name.startswith(f"CGNAT-{LONGEST}-")
    assert len(name) <= 28   # iptables: "must be under 29 chars"
    assert builtin_of(name) == builtin


def test_chains_of_older_rules_files_still_map_to_their_builtin():
    assert builtin_of("CGNAT-PREROUTING") == "PREROUTING"
    assert builtin_of("CGNAT-FORWARD") == "FORWARD"


def test_declared_chains():
    rules = ("*nat\n:CGNAT-wg0-PRE - [0:0]\n-A CGNAT-wg0-PRE -j RETURN\nCOMMIT\n"
             "*filter\n:CGNAT-wg0-FWD - [0:0]\n:OTHER - [0:0]\nCOMMIT\n")
    assert declared_chains(rules) == [("nat", "CGNAT-wg0-PRE"), ("filter", "CGNAT-wg0-FWD")]
