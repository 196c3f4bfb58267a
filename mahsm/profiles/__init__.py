"""Agent profiles: named agents serving capability pools (docs/profiles.md)."""

from mahsm.contracts.profile import AgentProfile, CapabilityInfo, PoolProfile
from mahsm.profiles.loading import (
    ENTRY_POINT_GROUP,
    ProfileError,
    load_profile_file,
    load_profiles,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentProfile",
    "CapabilityInfo",
    "PoolProfile",
    "ProfileError",
    "load_profile_file",
    "load_profiles",
]
