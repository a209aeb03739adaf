from __future__ import annotations

from pathlib import Path

import pytest

from nsd import config
from nsd.errors import Invalid

REPO = Path(__file__).resolve().parents[2]


def test_precedence_is_flags_then_env_then_file_then_defaults(tmp_path: Path) -> None:
    f = tmp_path / "nsd.toml"
    f.write_text('[server]\nhttp_port = 1111\nbind = "0.0.0.0"\n[journal]\nfsync = false\n')
    cfg = config.load(f, env={"NSD_HTTP_PORT": "2222", "NSD_BIND": "127.0.0.2"}, flags={"http_port": 3333})
    assert cfg.http_port == 3333 and cfg.sources["http_port"] == "flag"
    assert cfg.bind == "127.0.0.2" and cfg.sources["bind"] == "env NSD_BIND"
    assert cfg.fsync is False and cfg.sources["fsync"].startswith("file ")
    assert cfg.segment_bytes == 64 << 20 and cfg.sources["segment_bytes"] == "default"


def test_bad_values_name_the_setting_and_source(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="http_port from NSD_HTTP_PORT"):
        config.load(env={"NSD_HTTP_PORT": "many"})
    with pytest.raises(Invalid, match="fsync from flag"):
        config.load(env={}, flags={"fsync": "perhaps"})
    with pytest.raises(Invalid, match="event_loop from NSD_EVENT_LOOP: expected one of uvloop, asyncio, got 'trio'"):
        config.load(env={"NSD_EVENT_LOOP": "trio"})
    with pytest.raises(Invalid, match=r"persist_delay from NSD_PERSIST_DELAY: expected 0..86400, got '-1'"):
        config.load(env={"NSD_PERSIST_DELAY": "-1"})
    assert config.load(env={"NSD_LOG_FORMAT": "json"}).log_format == "json"
    f = tmp_path / "bad.toml"
    f.write_text("[server]\nhttp_prot = 1\n")
    with pytest.raises(Invalid, match=r"unknown setting server.http_prot"):
        config.load(f, env={})


def test_root_ufs_defaults_to_a_dir_inside_the_data_dir(tmp_path: Path) -> None:
    cfg = config.load(env={"NSD_DATA_DIR": str(tmp_path)})
    assert cfg.root_ufs_uri == (tmp_path / "ufs").as_uri()


def test_shipped_conf_file_is_the_rendered_defaults() -> None:
    shipped = (REPO / "conf" / "nsd.toml").read_text()
    assert shipped == config.render_toml()
    cfg = config.load(REPO / "conf" / "nsd.toml", env={})
    assert all(cfg.values[s.name] == s.default for s in config.SETTINGS)


def test_readme_carries_the_generated_reference() -> None:
    assert config.render_markdown() in (REPO / "README.md").read_text()
