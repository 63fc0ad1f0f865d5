"""ShanghaiTech Campus (STC): the official layout, the paper's protocol, the loaders and its
registration as the dataset ``stc`` (:mod:`.plugin`).

Layout (Luo et al., ICCV 2017; the files as distributed)::

    ROOT/training/videos/<scene>_<clip>.avi               normal videos, one folder for all scenes
    ROOT/testing/frames/<scene>_<clip>/<NNN>.jpg          test frames, numbered from 000
    ROOT/testing/test_frame_mask/<scene>_<clip>.npy       (frames,) per-frame labels, 1 = anomalous
    ROOT/testing/test_pixel_mask/<scene>_<clip>.npy       (frames, H, W) pixel masks, non-zero = anomalous

The scene is the part of the name before the first ``_`` (``01`` .. ``13``).

Protocol (PaDiM paper Sec. IV-A and Table IV, following SPADE, Cohen and Hoshen 2020):

* one model per scene, trained on that scene's training videos; a scene without test clips (real
  STC's scene 13) is reported as such, not fitted;
* frames resized to 256 x 256 without a crop (a 64 x 64 grid for stride-4 features);
* training frames subsampled by one stride for every video: frames 0, s, 2s, ... of each video.
  By default (``dataset.train_stride: null``) ``s`` is the smallest stride that keeps at most
  ``dataset.train_frames_total`` (5,000, SPADE's "about 5,000 frames") frames over every training
  video of the dataset, whatever scenes a run covers, so a scene's frames never depend on the
  ``categories`` selection; the stride used is recorded;
* test frames subsampled by ``dataset.test_stride`` (5): frames 0, 5, 10, ... of each clip;
* metrics: pixel ROC-AUC over every test pixel of a scene, and pooled over every scene; frame-level
  ROC-AUC of the map maxima (:mod:`.summary`).

Alignment is checked per clip, before any model is loaded: the JPEG frames must be numbered
exactly 0 .. n-1 and their count must equal the frame mask's length and the pixel mask's first
dimension; the pixel masks' ``H x W`` must be the frames' size. A mismatch is a
:class:`~padim_bench.errors.DataError` naming the clip and the counts.

Videos are decoded with PyAV (``av`` on PyPI), the maintained binding to FFmpeg's libraries: it
decodes every codec FFmpeg does (real STC's AVI files included), reads a video's frame count from
its container header without decoding (or counts packets when the header has none), and decodes
sequentially into numpy with little overhead. torchvision's video API is deprecated, and OpenCV
would add a large dependency for this one use. Masks are read with ``np.load(allow_pickle=False,
mmap_mode='r')``: never unpickled, and only the selected frames' masks are paged in.

Nothing holds all training frames: :class:`VideoFrames` decodes one video at a time and yields the
selected frames as they come (PaDiM streams its statistics over them; SPADE's bank is allocated
once, at the predicted size).
"""


from .plan import (StcPlan, check_test_frames, derive_train_stride, make_plan, plan_for, prepare, protocol_text,
                   resolve_scenes, select_frames)
from .plugin import Stc, StcParams
from .records import (STC_SCENES, STC_TEST_SCENES, ClipInfo, StcLayout, StcSplit, TestFrame, TrainFrame,
                      VideoInfo)
from .scan import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, decoder_name, scan_clip, scan_stc, video_frame_count
from .summary import SCENE_MEAN

_LOADING = ("ClipFrames", "VideoFrames", "make_stc_loader")  # torch: imported when first asked for

__all__ = [
    "FRAME_EXTENSIONS", "SCENE_MEAN", "STC_SCENES", "STC_TEST_SCENES", "VIDEO_EXTENSIONS", "ClipInfo", "Stc",
    "StcLayout", "StcParams", "StcPlan", "StcSplit", "TestFrame", "TrainFrame", "VideoInfo", "check_test_frames",
    "decoder_name", "derive_train_stride", "make_plan", "plan_for", "prepare", "protocol_text", "resolve_scenes",
    "scan_clip", "scan_stc", "select_frames", "video_frame_count", *_LOADING,
]


def __getattr__(name: str):
    if name in _LOADING:
        from . import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
