"""raysweep.left_groups on a real local Ray (in a subprocess): a placement group noted in a
trial's directory, as a worker group's controller notes it, is removed by the trial's next
attempt, and its CPUs can be reserved again at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    import pyarrow.fs
    import ray
    from ray.util.placement_group import placement_group, placement_group_table

    from raysweep.left_groups import GROUP_FILE, GroupNoted, remove_left_group

    trial_dir = sys.argv[1]
    fs = pyarrow.fs.LocalFileSystem()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    # What a worker group's controller notes as its group starts (every CPU reserved).
    left = placement_group([{"CPU": 2}])
    ray.get(left.ready(), timeout=120)
    handle = SimpleNamespace(placement_group=left)
    worker_group = SimpleNamespace(
        get_worker_group_state=lambda: SimpleNamespace(placement_group_handle=handle)
    )
    GroupNoted(str(Path(trial_dir).parent), "t000").after_worker_group_start(worker_group)
    assert (fs.get_file_info(f"{trial_dir}/{GROUP_FILE}").type == pyarrow.fs.FileType.File)

    # The attempt died; the next one removes the group, and the CPUs are free again.
    assert remove_left_group(fs, trial_dir) == left.id.hex()
    assert placement_group_table(left)["state"] == "REMOVED"
    again = placement_group([{"CPU": 2}])
    ray.get(again.ready(), timeout=120)
    # Nothing noted any more: nothing to do.
    assert remove_left_group(fs, trial_dir) is None

    # A group already gone (an attempt that shut its worker group down), or one of an earlier
    # Ray session: the note is dropped, nothing else happens.
    ray.util.remove_placement_group(again)
    for group_id in (again.id.hex(), "ab" * 18):
        with fs.open_output_stream(f"{trial_dir}/{GROUP_FILE}") as fh:
            fh.write(group_id.encode())
        assert remove_left_group(fs, trial_dir) is None
        assert fs.get_file_info(f"{trial_dir}/{GROUP_FILE}").type == pyarrow.fs.FileType.NotFound
    print("ok")
    """
)


def test_a_noted_placement_group_is_removed_by_the_next_attempt(tmp_path: Path) -> None:
    trial_dir = tmp_path / "t000"
    trial_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(trial_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        proc.stdout[-2000:] + proc.stderr[-4000:]
    )
