"""The run folder's one owner: what a run writes, how it resumes, and how results are read back.

* :mod:`.folder`: claiming an output folder (:func:`claim_run_folder`), the category records and
  their resume check (:class:`RunFolder`), the pixel histograms, consolidation into
  ``results.json`` / ``.csv`` / ``.md`` (:meth:`RunFolder.write_results`, :func:`consolidate_run`);
* :mod:`.consolidate`: a category record's stamp (hashes, fingerprint, environment) and the run
  record of ``results.json`` (:func:`run_record`);
* :mod:`.code`: which code made a record (the resume rule's code check, the labels of dirty or
  mixed code; the identity itself is :func:`padim_bench.envinfo.code_identity`);
* :mod:`.cache`: the data fingerprints and saved models (the model cache, ``output.save_models``);
* :mod:`.reader`: the one reader of run folders and results files (:func:`read_results`,
  :func:`read_run`) for ``table``, ``check``, ``report`` and the scripts;
* :mod:`.files`: atomic writes;
* :mod:`.lock`: one writer per run folder (:func:`run_folder_lock`).

Importing this package imports neither torch nor matplotlib.
"""

from .cache import (data_fingerprint, load_cached, load_model_state, model_cache_path, save_model,
                    train_fingerprint)
from .consolidate import run_record, stamp_category
from .files import WriteError, atomic_write_bytes, atomic_write_json, atomic_write_text, write_json_and_markdown
from .folder import (RECORD_VERSION, RESULTS, RUN_FILES, RUN_FOLDERS, RUN_INFO, RunFolder, claim_run_folder,
                     consolidate_run, finished_record, load_histogram, other_run_hash, run_info, save_histogram)
from .lock import FolderLocked, read_holder, run_folder_lock
from .reader import read_results, read_results_file, read_run, results_files

__all__ = [
    "FolderLocked", "RECORD_VERSION", "RESULTS", "RUN_FILES", "RUN_FOLDERS", "RUN_INFO", "RunFolder", "atomic_write_bytes",
    "atomic_write_json", "atomic_write_text", "claim_run_folder", "consolidate_run", "data_fingerprint",
    "finished_record", "load_cached", "load_histogram", "load_model_state", "model_cache_path", "other_run_hash",
    "read_holder", "read_results", "read_results_file", "read_run", "results_files", "run_folder_lock", "run_info", "run_record", "save_histogram",
    "save_model", "stamp_category", "train_fingerprint", "write_json_and_markdown", "WriteError",
]
