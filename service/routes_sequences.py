"""``GET /sequences/{id}``: metadata and keypoints of one indexed walk (the page animates it)."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException
from gaitsearch.service import errors, validation
from gaitsearch.service.deps import ServiceState, file_reads, get_state, json_response, live_index
from gaitsearch.service.schemas import SequenceResponse
from starlette.responses import Response

router = APIRouter(tags=["sequences"], responses=errors.COMMON)


@router.get("/sequences/{seq_id}", response_model=SequenceResponse, summary="One walk")
async def get_sequence(
    seq_id: str,
    state: ServiceState = Depends(get_state),
    index: Any = Depends(live_index),
) -> Response:
    validation.check_id(seq_id)
    meta = index.get(seq_id)
    if meta is None:
        raise HTTPException(404, f"id: unknown sequence {seq_id!r}")
    # Own pool with a deadline: a file on a hung mount must not hold a search worker.
    keypoints = await file_reads(state).run(index.load_keypoints, seq_id)
    if keypoints is None:
        raise HTTPException(404, f"id: the keypoints of {seq_id!r} are no longer on disk")
    # Two decimals of a pixel are plenty for drawing and keep the payload small.
    keypoints = np.round(np.asarray(keypoints, dtype=np.float64), 2)
    public = {k: v for k, v in meta.items() if k != "path"}
    return json_response(
        {
            "id": seq_id,
            "index_version": index.version,
            "fps": float(public.get("fps") or 25.0),
            "frames": int(keypoints.shape[0]),
            "metadata": public,
            "keypoints": keypoints,
        }
    )
