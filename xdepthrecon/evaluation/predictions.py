"""A prediction taken apart: its point estimate and, for probabilistic ones, its members or standard deviation."""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

#: Name of the ensemble dimension.
MEMBER = "member"
#: Attribute of an ensemble's members that says how they were made.
MEMBERS_ATTRIBUTE = "member_construction"
#: Its value on members centred on the stated mean and scaled, cell by cell, to the stated error (those of
#: :func:`xdepthrecon.reconstruct` with a calibrated model): their mean and spread are ``thetao`` and
#: ``thetao_std`` exactly, so they are not independent draws.
CALIBRATED_MEMBERS = "centred on thetao and scaled to thetao_std cell by cell; not independent draws"


@dataclass(frozen=True)
class Prediction:
    """A prediction taken apart: the point estimate and, for probabilistic ones, members or a std."""

    mean: xr.DataArray
    members: xr.DataArray | None = None
    std: xr.DataArray | None = None

    @property
    def calibrated(self) -> bool:
        """Whether the members are centred on the stated mean and scaled to its error (:data:`CALIBRATED_MEMBERS`)."""
        return self.members is not None and self.members.attrs.get(MEMBERS_ATTRIBUTE) == CALIBRATED_MEMBERS


def thetao_field(obj: xr.Dataset | xr.DataArray, role: str) -> xr.DataArray:
    """The temperature of a cube (its ``thetao``) or the DataArray itself; ``role`` names it in errors."""
    if isinstance(obj, xr.DataArray):
        return obj
    if "thetao" not in obj:
        raise ValueError(
            f"the {role} has no 'thetao' variable (it has {list(map(str, obj.data_vars))}); pass a canonical "
            "cube (see xdepthrecon.standardize) or the temperature DataArray."
        )
    return obj["thetao"]


def prediction_parts(prediction: xr.Dataset | xr.DataArray) -> Prediction:
    """Split a prediction into point estimate and members or std (see :func:`~xdepthrecon.evaluate`)."""
    if isinstance(prediction, xr.Dataset) and "thetao_members" in prediction:
        members = prediction["thetao_members"]
    else:
        field = thetao_field(prediction, "prediction")
        members = field if MEMBER in field.dims else None
        if members is None:
            std = prediction.get("thetao_std") if isinstance(prediction, xr.Dataset) else None
            return Prediction(field, std=std)
    if MEMBER not in members.dims or members.sizes[MEMBER] < 2:
        raise ValueError(
            f"an ensemble needs a {MEMBER!r} dimension of 2 or more members (got dims "
            f"{dict(members.sizes)}); score a single member as a deterministic prediction with .isel({MEMBER}=0)."
        )
    return Prediction(members.mean(MEMBER, skipna=False), members=members)
