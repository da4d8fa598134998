"""The tenants file: what it accepts, and the key it names when it refuses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from boson_shared.errors import ConfigError
from boson_shared.scheduling.tenants import (
    DEFAULT_TENANT,
    TenantsConfig,
    entitlements,
    guarantees,
    load_tenants,
    parse_tenants,
)
from boson_shared.settings import BosonSettings

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "tenants" / "tenants.example.toml"


def test_the_example_in_deploy_parses() -> None:
    config = load_tenants(EXAMPLE)
    assert "research" in config.tenants
    assert config.tenants["research"].may_preempt


def test_no_file_means_one_default_tenant_with_no_limits() -> None:
    config = load_tenants(None)
    assert config.names == (DEFAULT_TENANT,)
    spec = config.tenants[DEFAULT_TENANT]
    assert spec.quota_vector() == (0.0, 0.0, 0.0)
    assert all(math.isinf(x) for x in spec.borrowing_vector())
    assert BosonSettings().tenants() == TenantsConfig.single()


def test_a_full_tenant_parses_to_vectors() -> None:
    config = parse_tenants(
        """
        [tenants.a]
        weight = 4
        may_preempt = true
        quota = { cpu = 8, memory = 2.5 }
        borrowing_limit = { cpu = 4 }
        """
    )
    a = config.tenants["a"]
    assert a.quota_vector() == (8.0, 2.5, 0.0)
    assert a.borrowing_vector() == (4.0, math.inf, math.inf)
    assert a.weight == 4.0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[tenants.a]\nquota = { cpu = -1 }", "tenants.a.quota.cpu"),
        ("[tenants.a]\nquota = { disk = 1 }", "tenants.a.quota.disk"),
        ('[tenants.a]\nweight = "heavy"', "tenants.a.weight"),
        ("[tenants.a]\nweight = 0", "tenants.a.weight"),
        ("[tenants.a]\nborrowing_limit = { gpu = -2 }", "tenants.a.borrowing_limit.gpu"),
        ("[tenants.a]\nmay_preempt = 3", "tenants.a.may_preempt"),
        ("[tenants.a]\ncolour = 1", "tenants.a.colour"),
        ('[tenants."a b"]\nweight = 1', "tenants.a b"),
        ("tenants = {}", "tenants"),
        ("[tenants.a]\nweight = nan", "tenants.a.weight"),
    ],
)
def test_an_invalid_file_is_a_config_error_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_tenants(text)
    assert key in str(e.value)


def test_toml_that_does_not_parse_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text("[tenants.a]\nweight = 4x\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_tenants(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        BosonSettings(tenants_file=tmp_path / "absent.toml").tenants()


def test_guarantees_are_the_quotas_while_the_pool_holds_them() -> None:
    assert guarantees([(4, 2, 0), (4, 2, 0)], (10, 4, 0)) == [(4, 2, 0), (4, 2, 0)]


def test_guarantees_shrink_in_proportion_when_the_pool_is_smaller() -> None:
    got = guarantees([(6, 1, 0), (2, 1, 0)], (4, 4, 0))
    assert got == [(3.0, 1.0, 0.0), (1.0, 1.0, 0.0)]


def test_entitlements_are_normalised_weights() -> None:
    config = parse_tenants("[tenants.a]\nweight = 3\n[tenants.b]\nweight = 1\n")
    assert entitlements(config) == {"a": 0.75, "b": 0.25}
