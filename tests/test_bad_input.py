"""Bad input through the entry point, `experiments/main.py`: each case ends with one line
`error: ...` naming the file, field or flag, a non-zero exit status, no traceback, and nothing
written into the workdir but what was there.

Most cases call `main` in this process (each fails before any compile, so a case costs
milliseconds); a few run `python -m experiments.main` to check what a user sees. The loaders'
own refusals are unit-tested in test_matfiles.py / test_dataset.py / test_longtail.py; a code file
whose k does not match the index is covered in test_index_cli.py.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import test_matfiles as mat_files
import test_models_image as vggf_files
from absl import flags

import experiments.main as entry_point
from ltcmh_jax.data.synthetic import make_synthetic_longtail

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A cheap configuration: whatever is refused is refused before it matters.
SMALL = (
    "--bits=8",
    "--epochs=1",
    "--text_hidden=32",
    "--ae_hidden=16",
    "--progress=false",
    "--plots=false",
)
NPZ = ("--dataset=npz", "--num_query=60", *SMALL)
LONGTAIL = ("--z1=40", "--imbalance_factor=4")


def run_main(*argv) -> tuple[int, str]:
    """`(exit status, message)` of experiments.main with these flags, in this process."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS(["experiments.main", *argv])
        entry_point.main(["experiments.main"])
    except SystemExit as stop:
        # sys.exit("error: ...") exits with status 1 after printing the message.
        return (1, stop.code) if isinstance(stop.code, str) else (stop.code, "")
    finally:
        flags.FLAGS.unparse_flags()
    return 0, ""


@pytest.fixture(scope="module")
def arrays():
    data = make_synthetic_longtail(num_samples=600, seed=0)
    return {"image": np.asarray(data.image), "text": np.asarray(data.text),
            "labels": np.asarray(data.labels)}  # fmt: skip


@pytest.fixture(scope="module")
def files(arrays, tmp_path_factory):
    """Named bad data files: `{case: path}`."""
    folder = tmp_path_factory.mktemp("bad")

    def npz(name, **changes):
        path = str(folder / f"{name}.npz")
        np.savez(path, **{**arrays, **changes})
        return path

    image, text = arrays["image"].copy(), arrays["text"].copy()
    image[5, 3] = np.nan
    text[9, 0] = np.inf
    unlabelled, unused_label = arrays["labels"].copy(), arrays["labels"].copy()
    unlabelled[[7, 30]] = 0
    unused_label[unused_label[:, 3] == 1, 0] = 1  # every row keeps a label
    unused_label[:, 3] = 0
    paths = {
        "nan_image": npz("nan_image", image=image),
        "inf_text": npz("inf_text", text=text),
        "rows_differ": npz("rows_differ", text=arrays["text"][:-1]),
        "unlabelled": npz("unlabelled", labels=unlabelled),
        "unused_label": npz("unused_label", labels=unused_label),
        "pickle": npz("pickle", label_names=np.array([{"a": 1}] * 24, dtype=object)),
    }
    good = npz("good")
    with open(good, "rb") as stream:
        whole = stream.read()
    paths["truncated_npz"] = str(folder / "truncated.npz")
    with open(paths["truncated_npz"], "wb") as stream:
        stream.write(whole[: len(whole) * 2 // 3])

    mat = mat_files.make_arrays()
    os.makedirs(folder / "renamed", exist_ok=True)
    renamed = mat_files.write_dcmh_files(str(folder / "renamed"), mat, version="v5")
    scipy.io.savemat(os.path.join(renamed, "mirflickr25k-lall.mat"), {"labels": mat["labels"]})
    paths["renamed_mat"] = renamed
    os.makedirs(folder / "cut", exist_ok=True)
    cut = mat_files.write_dcmh_files(str(folder / "cut"), mat, version="v73")
    text_file = os.path.join(cut, "mirflickr25k-yall.mat")
    os.truncate(text_file, os.path.getsize(text_file) // 2)
    paths["truncated_mat"] = cut
    os.makedirs(folder / "raw", exist_ok=True)
    paths["raw_mat"] = mat_files.write_dcmh_files(str(folder / "raw"), mat, version="v5")
    paths["vggf_wrong"] = str(folder / "vgg-narrow.mat")
    vggf_files._write_vggf(paths["vggf_wrong"], np.random.default_rng(1), channels=(4, 7, 6, 6, 5))
    paths["good"] = good
    return paths


# (case, flags, substrings the one line must hold); "{name}" is a file from `files`.
CASES = [
    ("nan features", ("--data_path={nan_image}",), ["{nan_image}", "image", "row 5"]),
    ("inf features", ("--data_path={inf_text}",), ["{inf_text}", "text", "row 9"]),
    ("n differs", ("--data_path={rows_differ}",), ["{rows_differ}", "text 599", "image 600"]),
    ("row without label", ("--data_path={unlabelled}",), ["{unlabelled}", "2 sample(s) have no label", "row 7"]),  # noqa: E501
    ("label without sample", ("--data_path={unused_label}",), ["{unused_label}", "no sample", "column 3"]),  # noqa: E501
    ("label without sample, balanced", ("--data_path={unused_label}", "--split=balanced", "--num_train=100"), ["{unused_label}", "column 3"]),  # noqa: E501
    ("npz needing pickle", ("--data_path={pickle}",), ["{pickle}", "pickle", "refused"]),
    ("truncated npz", ("--data_path={truncated_npz}",), ["{truncated_npz}"]),
    ("missing npz", ("--data_path={good}.missing",), ["{good}.missing", "no such file"]),
    ("mat of other names", ("--dataset=mirflickr25k", "--data_dir={renamed_mat}"), ["mirflickr25k-lall.mat", "LAll"]),  # noqa: E501
    ("truncated mat", ("--dataset=mirflickr25k", "--data_dir={truncated_mat}"), ["mirflickr25k-yall.mat"]),  # noqa: E501
    pytest.param("CNN-F of another architecture", ("--dataset=mirflickr25k", "--data_dir={raw_mat}", "--image_net=cnnf", "--cnnf_weights={vggf_wrong}", "--split=balanced", "--num_query=5", "--num_train=10", "--text_hidden=8"), ["{vggf_wrong}", "conv1"], marks=pytest.mark.slow),  # noqa: E501  (builds a full CNN-F)
    ("bits <= 0", ("--data_path={good}", "--bits=0"), ["--bits"]),
    ("bits above the index's limit", ("--data_path={good}", "--bits=100000"), ["--bits: at most 32767", "100000"]),  # noqa: E501
    ("imbalance factor < 1", ("--data_path={good}", "--imbalance_factor=0.5"), ["--imbalance_factor", "0.5"]),  # noqa: E501
    ("num_query too large", ("--data_path={good}", "--num_query=600"), ["--num_query", "600"]),
    ("z1 too large", ("--data_path={good}", "--z1=100000"), ["z1"]),
    ("z1 on a balanced split", ("--data_path={good}", "--split=balanced", "--z1=40"), ["--z1", "balanced"]),  # noqa: E501
    ("num_head too large", ("--data_path={good}", "--num_head=24"), ["--num_head"]),
    ("batch size 0", ("--data_path={good}", "--batch_size=0"), ["--batch_size"]),
    ("keep no checkpoints", ("--data_path={good}", "--keep_checkpoints=0"), ["--keep_checkpoints"]),
    ("image_hidden not ints", ("--data_path={good}", "--image_hidden=64,wide"), ["--image_hidden"]),
    ("weights without cnnf", ("--data_path={good}", "--cnnf_weights={vggf_wrong}"), ["--cnnf_weights"]),  # noqa: E501
    ("npz without path", ("--data_path=",), ["--data_path"]),
    ("half the multi-host flags", ("--data_path={good}", "--coordinator_address=127.0.0.1:1"), ["--num_processes"]),  # noqa: E501
    ("workdir under a file", ("--data_path={good}", "--workdir={good}/run"), ["--workdir", "{good}/run"]),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(
    "case, argv, named", CASES, ids=[getattr(case, "values", case)[0] for case in CASES]
)
def test_bad_input_ends_with_one_line_naming_it(files, tmp_path, case, argv, named):
    workdir = str(tmp_path / "run")
    split = () if "--split=balanced" in argv else LONGTAIL
    argv = [*NPZ, *split, f"--workdir={workdir}", *(arg.format(**files) for arg in argv)]
    code, message = run_main(*argv)
    assert code != 0, case
    assert message.startswith("error: ") and "\n" not in message, message
    for part in named:
        assert part.format(**files) in message, (part, message)
    # Nothing was written, and the workdir this run created is gone again.
    assert not os.path.exists(workdir), os.listdir(workdir)


def test_npz_without_split_flags_names_every_missing_flag_with_suggested_values(files, arrays):
    from ltcmh_jax.api import suggest_longtail_split

    code, message = run_main(*NPZ, f"--data_path={files['good']}")
    suggested = suggest_longtail_split(arrays["labels"], num_query=60)
    assert code == 1
    assert message == (
        f"error: --z1, --imbalance_factor: required for --dataset=npz --split=longtail; "
        f"suggested from the label counts of {files['good']}: --z1={suggested['z1']} "
        f"--imbalance_factor={suggested['imbalance_factor']:g} (or --split=balanced)"
    )


def _subprocess_main(*argv):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.main", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_what_a_user_sees(files, tmp_path):
    """Exit status and stderr of `python -m experiments.main` (started side by side)."""
    runs = {
        "nan": _subprocess_main(*NPZ, *LONGTAIL, f"--data_path={files['nan_image']}",
                                f"--workdir={tmp_path}"),
        "flag": _subprocess_main("--bitz=8", f"--workdir={tmp_path}"),
        "workdir": _subprocess_main(*NPZ, *LONGTAIL, f"--data_path={files['good']}",
                                    f"--workdir={files['good']}/run"),
    }  # fmt: skip
    results = {name: (run.communicate(timeout=300), run.returncode) for name, run in runs.items()}
    for name, ((stdout, stderr), code) in results.items():
        assert code != 0, name
        assert "Traceback" not in stderr, stderr[-2000:]
        assert stdout == "", stdout
    (_, nan_err), _ = results["nan"]
    assert nan_err.strip().splitlines()[-1] == (
        f"error: {files['nan_image']}: image: non-finite value (NaN or inf) in row 5"
    )
    (_, flag_err), _ = results["flag"]
    assert "Unknown command line flag 'bitz'" in flag_err.strip().splitlines()[0]
    (_, workdir_err), _ = results["workdir"]
    assert (
        workdir_err.strip()
        .splitlines()[-1]
        .startswith(f"error: --workdir: {files['good']}/run is not a writable directory")
    )
