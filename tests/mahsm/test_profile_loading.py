"""Loading agent profiles from YAML: valid files and folders, and errors naming file, field, fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mahsm.profiles import AgentProfile, ProfileError, load_profiles
from mahsm.settings import load_settings

REPO = Path(__file__).resolve().parents[2]

VALID = """
name: legal-reviewer
capabilities: [legal_review]
description: Reviews contracts.
instructions: Be careful.
tools: [calculator]
model: openai/gpt-4o-mini
max_iterations: 4
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_documented_example_folder_loads() -> None:
    [profile] = load_profiles(REPO / "examples/profiles", load_entry_points=False)
    assert profile.name == "legal-reviewer"
    assert profile.capabilities == ["legal_review"]
    assert profile.tools == ["calculator", "get_shared_state"]


def test_a_folder_loads_every_yaml_file_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", VALID)
    write(
        tmp_path,
        "a.yml",
        "profiles:\n  - {name: triage, capabilities: [triage, data_analysis],"
        " description: Sorts tickets.}\n",
    )
    write(tmp_path, "notes.txt", "not a profile")
    profiles = load_profiles(tmp_path, load_entry_points=False)
    assert [p.name for p in profiles] == ["triage", "legal-reviewer"]
    assert profiles[0].capabilities == ["triage", "data_analysis"]


def test_a_setting_names_the_profiles() -> None:
    settings = load_settings(_env_file=None, profiles="examples/profiles")
    assert settings.profiles == Path("examples/profiles")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            VALID.replace("[legal_review]", "[Legal Review]"),
            "capabilities.0: String should match pattern '^[a-z][a-z0-9_]{0,47}$';"
            " list lowercase identifiers, e.g. [legal_review]",
        ),
        (
            VALID.replace("description: Reviews contracts.\n", ""),
            "description: required; add it (what the planner is told it can do)",
        ),
        (
            VALID + "temperature: 0.2\n",
            "temperature: unknown field; the fields are name, capabilities,",
        ),
        (
            VALID.replace("max_iterations: 4", "max_iterations: 500"),
            "max_iterations: Input should be less than or equal to 100;"
            " use a whole number from 1 to 100",
        ),
        (
            VALID.replace("openai/gpt-4o-mini", "gpt-4o"),
            "model: String should match pattern",
        ),
        (
            VALID + "artifact: legal@1\n",
            "give either `instructions` or `artifact` (a prompt artifact), not both",
        ),
        ("just text", "expected a profile (a mapping with name, capabilities, ...), got str"),
        ("name: [unclosed", "not valid YAML"),
    ],
)
def test_an_invalid_profile_names_the_file_the_field_and_the_fix(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "legal.yaml", text)
    with pytest.raises(ProfileError) as raised:
        load_profiles(path, load_entry_points=False)
    message = str(raised.value)
    assert message.startswith(f"agent profiles in {path}: ")
    assert expected in message


def test_a_list_names_the_position_of_the_bad_profile(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "two.yaml",
        "- {name: a, capabilities: [x], description: A}\n"
        "- {name: b, capabilities: [], description: B}\n",
    )
    with pytest.raises(
        ProfileError, match=r"profiles\[1\]\.capabilities: List should have at least 1"
    ):
        load_profiles(path, load_entry_points=False)


def test_two_profiles_may_not_share_a_name_or_a_pool(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", VALID)
    write(tmp_path, "b.yaml", VALID.replace("legal-reviewer", "other"))
    with pytest.raises(ProfileError) as raised:
        load_profiles(tmp_path, load_entry_points=False)
    assert "serve the same capabilities [legal_review]; a pool has one profile" in str(raised.value)
    write(tmp_path, "b.yaml", VALID.replace("[legal_review]", "[contracts]"))
    with pytest.raises(ProfileError, match="profile 'legal-reviewer' in .*b.yaml is also defined"):
        load_profiles(tmp_path, load_entry_points=False)


def test_a_missing_path_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no such file or folder; set MAHSM_PROFILES"):
        load_profiles(tmp_path / "nope.yaml", load_entry_points=False)


def test_profiles_are_models_too() -> None:
    profile = AgentProfile(name="x", capabilities=["custom_one"], description="d")
    assert profile.tools is None and profile.model is None


def test_profiles_come_from_entry_points_of_installed_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real (if tiny) installed distribution: importlib.metadata finds it on sys.path.
    write(
        tmp_path,
        "acme_profiles.py",
        "from mahsm.profiles import AgentProfile\n"
        "legal = AgentProfile(name='acme-legal', capabilities=['acme_legal'],"
        " description='ACME legal.')\n"
        "def more():\n"
        "    return [{'name': 'acme-tax', 'capabilities': ['acme_tax'], 'description': 'Tax.'}]\n",
    )
    info = tmp_path / "acme_profiles-1.0.dist-info"
    info.mkdir()
    write(info, "METADATA", "Metadata-Version: 2.1\nName: acme-profiles\nVersion: 1.0\n")
    write(
        info,
        "entry_points.txt",
        "[mahsm.profiles]\nlegal = acme_profiles:legal\nmore = acme_profiles:more\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = {p.name: p for p in load_profiles(None)}
    assert set(found) == {"acme-legal", "acme-tax"}
    assert found["acme-tax"].capabilities == ["acme_tax"]
    assert load_profiles(None, load_entry_points=False) == []


def test_a_profile_may_name_the_tools_of_an_mcp_server_that_is_down() -> None:
    from mahsm.activities.tools.registry import default_registry
    from mahsm.workers.profile_pools import profile_catalogue

    catalogue = default_registry().copy()
    catalogue.mark_unavailable("notes__", "MCP server 'notes' is unavailable: connection refused")
    profile = AgentProfile(
        name="note-taker",
        capabilities=["note_taking"],
        description="keeps notes",
        tools=["calculator", "notes__add"],
    )
    own = profile_catalogue(profile, catalogue)  # no ProfileError: the server may come back
    assert own.names() == ["calculator"]
    assert own.get("calculator") is not None
    assert [t.name for t in own.tools_for(["note_taking"])] == ["calculator"]
    assert "connection refused" in (own.unavailable_reason("notes__add") or "")

    with pytest.raises(ProfileError, match="unknown tool 'nope__add'"):
        profile_catalogue(profile.model_copy(update={"tools": ["nope__add"]}), catalogue)
