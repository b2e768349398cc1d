"""Failure edges of the command line and of the files it reads and writes: special files
(FIFOs, devices, symbolic links, directories), closed pipes, terminals that cannot show
every character, damaged or hostile metadata, full disks, and resumes that no longer fit.
Each ends in one line naming what was wrong (exit status 1, or 2 for bad usage), or
succeeds where success is right."""

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error as one_line_error
from cli_helpers import run_main
from safetensors.numpy import load_file, save_file

from minigrad import optim
from minigrad.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minigrad.files import write_atomically
from transformer.checkpoints import load_trained
from transformer.interop import InteropError, export_safetensors, import_safetensors
from transformer.model import Transformer, TransformerConfig
from transformer.tasks import MAX_EXAMPLES, TASKS, make_splits
from transformer.train import PREVIOUS, MetricsLog, RunWarning, TrainConfig, keep_previous, train

assert_one_line_error = partial(one_line_error, expected_status=1)  # these failures exit 1 unless a test says otherwise


ROOT = Path(__file__).resolve().parents[1]
CHILD_ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A dates model after 2 steps of a micro model (checkpoint.prev.npz holds step 1)."""
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig.for_task("dates", model="micro", steps=2, n_train=64, n_valid=8, n_test=8,
                                  checkpoint_every=1, out=str(out))
    return str(train(config, progress=False).checkpoint)


@pytest.fixture(scope="module")
def bare_export(checkpoint, tmp_path_factory):
    """The checkpoint's model exported from Python without training settings (no task)."""
    trained = load_trained(checkpoint)
    path = tmp_path_factory.mktemp("bare") / "bare.safetensors"
    export_safetensors(trained.model, trained.tokenizer, path)
    return str(path)




def cli(*argv, env=None, **run):
    """The command line in a child process (stdout and stderr captured unless given)."""
    run.setdefault("stderr", subprocess.PIPE)
    if "stdout" not in run:
        run["stdout"] = subprocess.PIPE
    return subprocess.run([sys.executable, "-m", "transformer", *argv], cwd=ROOT, text=True, timeout=120,
                          env={**CHILD_ENV, **(env or {})}, **run)


def read_all_in_a_thread(path):
    """Open the FIFO ``path`` for reading in a thread; returns (thread, the bytes read)."""
    received = []
    thread = threading.Thread(target=lambda: received.append(Path(path).read_bytes()), daemon=True)
    thread.start()
    return thread, received


# ---------------------------------------------------------------------------- special files are never replaced


def test_writing_into_a_fifo_streams_into_it_and_leaves_it_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    thread, received = read_all_in_a_thread(fifo)
    deadline = time.monotonic() + 10
    while True:  # the reader opens the FIFO in its thread; until then there is no reader
        try:
            write_atomically(fifo, b"page contents")
            break
        except OSError as e:
            assert "a FIFO with no reader" in str(e) and time.monotonic() < deadline
            time.sleep(0.01)
    thread.join(10)
    assert received == [b"page contents"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_onto_a_fifo_without_a_reader_is_one_line_and_the_fifo_stays(checkpoint, tmp_path, capsys):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    status, _, err = run_main(["export", checkpoint, "--out", str(fifo)], capsys)
    assert_one_line_error(status, err, str(fifo), "a FIFO with no reader")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.requires("dot")
def test_graph_html_into_a_fifo_streams_the_page(checkpoint, tmp_path):
    fifo = tmp_path / "page.html"
    os.mkfifo(fifo)
    thread, received = read_all_in_a_thread(fifo)
    result = cli("graph", "--checkpoint", checkpoint, "--html", "--depth", "1", "--out", str(fifo))
    thread.join(30)
    assert result.returncode == 0, result.stderr
    assert received and received[0].startswith(b"<!DOCTYPE html>")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a character device (mknod) needs root")
def test_export_into_a_character_device_writes_into_it_and_leaves_the_device(checkpoint, tmp_path, capsys):
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    status, out, err = run_main(["export", checkpoint, "--out", str(null)], capsys)
    assert status == 0 and "wrote" in out, err
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)


def test_a_symlink_is_written_through_to_its_target_and_stays_a_link(tmp_path):
    target = tmp_path / "elsewhere" / "page.html"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "page.html"
    link.symlink_to(target)
    assert write_atomically(link, "new") == link
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "elsewhere" / "made.html")
    write_atomically(dangling, "made")  # as a shell's > does: the target is created
    assert dangling.is_symlink() and (tmp_path / "elsewhere" / "made.html").read_text() == "made"
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("make, words", [
    (lambda p: (p.symlink_to(p.with_name("b")), p.with_name("b").symlink_to(p)), ["loop of symbolic links"]),
    (lambda p: p.mkdir(), ["is a directory"]),
    (lambda p: None, ["No such file or directory"]),  # its directory is missing: see below
], ids=["symlink loop", "directory", "missing directory"])
def test_what_cannot_be_written_is_an_oserror_naming_the_path_given(make, words, tmp_path):
    path = tmp_path / "out.bin"
    make(path)
    if not path.exists() and not path.is_symlink():
        path = tmp_path / "missing" / "out.bin"
    with pytest.raises(OSError) as raised:
        write_atomically(path, b"x")
    assert raised.value.filename == str(path) and ".tmp" not in str(raised.value)
    for word in words:
        assert word in str(raised.value)


def test_an_empty_output_name_is_a_usage_error(checkpoint, capsys):
    status, _, err = run_main(["export", checkpoint, "--out", ""], capsys)
    assert_one_line_error(status, err, "argument --out: an empty file name", expected_status=2)
    with pytest.raises(FileNotFoundError, match="an empty file name"):
        write_atomically("", b"x")


def test_attention_reports_the_file_it_wrote_and_refuses_a_directory(checkpoint, tmp_path, capsys):
    status, out, err = run_main(["attention", "--checkpoint", checkpoint, "--out", str(tmp_path / "noext")], capsys)
    assert status == 0, err
    assert (tmp_path / "noext.png").is_file() and f"to {tmp_path / 'noext.png'}\n" in out
    (tmp_path / "dir").mkdir()
    status, _, err = run_main(["attention", "--checkpoint", checkpoint, "--out", str(tmp_path / "dir")], capsys)
    assert_one_line_error(status, err, str(tmp_path / "dir"), "is a directory")
    assert not (tmp_path / "dir.png").exists()


def test_attention_seed_out_of_range_names_the_option(checkpoint, capsys):
    status, _, err = run_main(["attention", "--checkpoint", checkpoint, "--seed", "-1"], capsys)
    assert_one_line_error(status, err, "argument --seed", expected_status=2)


# ---------------------------------------------------------------------------- reading: what is not a model file


@pytest.mark.parametrize("make, words", [
    (lambda p: p.mkdir(), ["is a directory"]),
    (lambda p: os.mkfifo(p), ["not a regular file (a FIFO)"]),
    (lambda p: (p.symlink_to(p.with_name("b.safetensors")), p.with_name("b.safetensors").symlink_to(p)),
     ["loop of symbolic links"]),
], ids=["directory", "fifo", "symlink loop"])
def test_a_model_path_that_is_not_a_file_says_what_it_is(make, words, tmp_path, capsys):
    path = tmp_path / "m.safetensors"
    make(path)
    with pytest.raises(InteropError) as raised:
        import_safetensors(path)
    for word in words:
        assert word in str(raised.value)
    status, _, err = run_main(["translate", "--checkpoint", str(path), "1 May 2020"], capsys)
    assert_one_line_error(status, err, str(path), *words)
    assert "no such file" not in err and "train a model first" not in err


def test_a_checkpoint_symlink_loop_is_not_told_to_train_a_model(tmp_path, capsys):
    loop = tmp_path / "checkpoint.npz"
    loop.symlink_to(tmp_path / "other.npz")
    (tmp_path / "other.npz").symlink_to(loop)
    status, _, err = run_main(["translate", "--checkpoint", str(loop), "1 May 2020"], capsys)
    assert_one_line_error(status, err, str(loop), "loop of symbolic links")
    assert "train a model first" not in err


# ---------------------------------------------------------------------------- a model exported without a task


def test_evaluate_graph_and_attention_say_they_need_a_task_and_translate_works(bare_export, capsys):
    status, _, err = run_main(["evaluate", "--checkpoint", bare_export], capsys)
    assert_one_line_error(status, err, bare_export, "holds no training settings", "evaluate rebuilds the test split")
    status, _, err = run_main(["attention", "--checkpoint", bare_export], capsys)
    assert_one_line_error(status, err, "give the text to draw with --text")
    status, _, err = run_main(["graph", "--checkpoint", bare_export], capsys)
    assert_one_line_error(status, err, "graph runs the model on a batch of the task's examples")
    status, out, err = run_main(["translate", "--checkpoint", bare_export, "1 May 2020", "2 June 2021"], capsys)
    assert status == 0 and len(out.splitlines()) == 2, err


def test_attention_on_a_model_without_a_task_draws_the_text_given(bare_export, tmp_path, capsys):
    status, out, err = run_main(["attention", "--checkpoint", bare_export, "--text", "1 May 2020",
                                 "--out", str(tmp_path / "a.png")], capsys)
    assert status == 0 and (tmp_path / "a.png").is_file(), err


# ---------------------------------------------------------------------------- hostile safetensors metadata


def with_metadata(source, path, **changes):
    """A copy of the .safetensors ``source`` at ``path`` with its metadata changed (None removes a key)."""
    from safetensors import safe_open

    with safe_open(str(source), framework="np") as f:
        metadata = f.metadata()
    metadata.update(changes)
    save_file(load_file(str(source)), str(path), metadata={k: v for k, v in metadata.items() if v is not None})
    return path


@pytest.mark.parametrize("changes, words", [
    (dict(config="[" * 100_000 + "]" * 100_000), ["metadata config is JSON nested 100000 deep; at most 64"]),
    (dict(tokenizer='{"a": ' * 100_000 + "1" + "}" * 100_000), ["metadata tokenizer is JSON nested 100000 deep"]),
    (dict(step="²"), ["metadata step must be a non-negative integer", "'²'"]),
    (dict(step="9" * 5000), ["metadata step must be a non-negative integer", "..."]),
    (dict(train=json.dumps({"task": "poetry"})), ["metadata train is invalid", "unknown task 'poetry'"]),
    (dict(train=json.dumps({"task": "copy", "n_train": -5})), ["metadata train is invalid", "n_train"]),
    (dict(train=json.dumps({"seed": 3})), ["metadata train names no task"]),
], ids=["deep config", "deep tokenizer", "superscript step", "5000-digit step", "unknown task", "bad n_train",
        "no task"])
def test_hostile_metadata_is_one_line_naming_the_file(changes, words, bare_export, tmp_path, capsys):
    path = with_metadata(bare_export, tmp_path / "m.safetensors", **changes)
    with pytest.raises(InteropError) as raised:
        import_safetensors(path)
    message = str(raised.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for word in words:
        assert word in message, message
    status, _, err = run_main(["evaluate", "--checkpoint", str(path)], capsys)
    assert_one_line_error(status, err, str(path), *words)


def with_huge_unused_tensor(source, path, size=2**31):
    """A copy of ``source`` with one more tensor, "unused", of ``size`` bytes: a sparse file,
    so it costs no disk, but reading it would take ``size`` bytes of memory."""
    data = Path(source).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    end = max(entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__")
    header["unused"] = {"dtype": "F32", "shape": [size // 4], "data_offsets": [end, end + size]}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + data[8 + n:])
        f.truncate(8 + len(text) + end + size)
    return path


def test_a_huge_unused_tensor_is_refused_from_the_header_without_reading_it(bare_export, tmp_path):
    path = with_huge_unused_tensor(bare_export, tmp_path / "huge.safetensors")
    script = ("import resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, resource.RLIM_INFINITY))\n"
              "from transformer.interop import InteropError, import_safetensors\n"
              "try:\n    import_safetensors(sys.argv[1])\n"
              "except InteropError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, env=CHILD_ENV, text=True,
                            capture_output=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "unexpected keys: unused" in result.stdout and "MemoryError" not in result.stdout, result.stdout


# ---------------------------------------------------------------------------- pipes and encodings


@pytest.mark.parametrize("command", [
    ["translate", "1 May 2020", "2 June 2021"],
    ["evaluate"],
    ["attention", "--out", "{tmp}/a.png"],
    pytest.param(["graph", "--out", "{tmp}/g.svg"], marks=pytest.mark.requires("dot")),
], ids=["translate", "evaluate", "attention", "graph"])
def test_a_reader_that_went_away_ends_the_command_quietly(command, checkpoint, tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -c1` that has read its byte and left
    try:
        result = cli(*[a.format(tmp=tmp_path) for a in command], "--checkpoint", checkpoint, stdout=write_end)
    finally:
        os.close(write_end)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_a_terminal_encoding_that_lacks_the_arrow_gets_it_escaped(checkpoint):
    result = cli("translate", "--show-source", "--checkpoint", checkpoint, "1 May 2020",
                 env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.startswith("1 May 2020 \\u2192 "), result.stdout


# ---------------------------------------------------------------------------- resuming


def small_run(out, steps=2, **settings):
    config = TrainConfig.for_task("copy", model="micro", steps=steps, n_train=200, n_valid=8, n_test=8,
                                  checkpoint_every=1, out=str(out), **settings)
    return train(config, progress=False)


def test_resuming_from_the_previous_checkpoint_in_its_own_directory_is_refused(tmp_path, capsys):
    small_run(tmp_path)
    newest = (tmp_path / "checkpoint.npz").read_bytes()
    status, _, err = run_main(["train", "--resume", str(tmp_path / PREVIOUS), "--steps", "4", "--quiet"], capsys)
    assert_one_line_error(status, err, f"{tmp_path / PREVIOUS} is older than {tmp_path / 'checkpoint.npz'}",
                          "--out")
    assert (tmp_path / "checkpoint.npz").read_bytes() == newest
    status, _, err = run_main(["train", "--resume", str(tmp_path / PREVIOUS), "--steps", "3", "--quiet",
                               "--out", str(tmp_path / "branch")], capsys)
    assert status == 0, err
    assert load_checkpoint(tmp_path / "branch" / "checkpoint.npz")["extra"]["step"] == 3


def test_a_symlinked_checkpoint_resumes_and_the_link_stays(tmp_path, capsys):
    small_run(tmp_path / "store")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").symlink_to(tmp_path / "store" / "checkpoint.npz")
    status, _, err = run_main(["train", "--resume", str(run / "checkpoint.npz"), "--steps", "3", "--quiet"],
                              capsys)
    assert status == 0, err
    assert (run / "checkpoint.npz").is_symlink()
    assert load_checkpoint(tmp_path / "store" / "checkpoint.npz")["extra"]["step"] == 3


def test_resuming_with_fewer_training_examples_than_the_epoch_used_is_one_line(tmp_path, capsys):
    small_run(tmp_path, batch_size=8)  # 2 of 25 batches of the epoch used
    status, _, err = run_main(["train", "--resume", str(tmp_path / "checkpoint.npz"), "--n-train", "8",
                               "--steps", "4", "--quiet"], capsys)
    assert_one_line_error(status, err, "used 2 batches of its epoch", "resume with the n_train and batch_size")


def test_a_failed_save_is_one_line_naming_the_file_and_the_checkpoint_kept(tmp_path, monkeypatch):
    model = Transformer(TransformerConfig(12, 12, d_model=8, n_heads=2, n_encoder_layers=1, n_decoder_layers=1,
                                          d_ff=8))
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, config={"saved": "first"})

    def disk_full(file, **arrays):
        file.write(b"PK\x03\x04 part")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(CheckpointError) as raised:
        save_checkpoint(path, model, config={"saved": "second"})
    monkeypatch.undo()
    assert str(raised.value) == (f"{path}: cannot save the checkpoint: No space left on device; "
                                 "the checkpoint that was there is left as it was")
    assert load_checkpoint(path)["config"] == {"saved": "first"} and not list(tmp_path.glob(".*"))
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'no' / 'c.npz'}: cannot save the checkpoint: No such "
                                              "file or directory; nothing was written$"):
        save_checkpoint(tmp_path / "no" / "c.npz", model)


def test_a_file_size_limit_during_a_resumed_run_keeps_the_checkpoint(tmp_path):
    small_run(tmp_path)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    limit = len(before) // 2  # above any metrics line, below a checkpoint
    script = (f"import resource, sys\nresource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
              "from transformer.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", script, "train", "--resume", str(tmp_path / "checkpoint.npz"),
                             "--steps", "4", "--quiet"], cwd=ROOT, env=CHILD_ENV, text=True, capture_output=True,
                            timeout=120)
    assert_one_line_error(result.returncode, result.stderr, f"{tmp_path / 'checkpoint.npz'}: cannot save the "
                          "checkpoint: File too large; the checkpoint that was there is left as it was")
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_keeping_the_previous_checkpoint_twice_leaves_no_temp_file(tmp_path):
    """After a failed save, checkpoint.npz and checkpoint.prev.npz are links of one file;
    renaming a link over its twin does nothing, which had left the temp link behind."""
    checkpoint = tmp_path / "checkpoint.npz"
    checkpoint.write_bytes(b"a checkpoint")
    keep_previous(checkpoint)
    keep_previous(checkpoint)  # the next save, after one that failed
    assert (tmp_path / PREVIOUS).read_bytes() == b"a checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", PREVIOUS]


def test_a_short_betas_list_in_a_checkpoint_is_refused_by_name(tmp_path):
    model = Transformer(TransformerConfig(12, 12, d_model=8, n_heads=2, n_encoder_layers=1, n_decoder_layers=1,
                                          d_ff=8))
    optimizer = optim.Adam(model.parameters())
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, optimizer)
    with zipfile.ZipFile(path) as z:
        arrays = {name[:-4]: np.load(z.open(name)) for name in z.namelist()}
    meta = json.loads(arrays["__meta__"].item())
    meta["optimizer"]["hyperparams"]["betas"] = [0.9]
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"betas must be a pair \[beta1, beta2\], got \[0.9\]"):
        load_checkpoint(path, model, optim.Adam(model.parameters()))


# ---------------------------------------------------------------------------- metrics.jsonl


RECORD = {"split": "train", "step": 1, "loss": 1.0, "token_accuracy": 0.5, "lr": 0.001, "grad_norm": 1.0}


def metrics_file(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("bad, words", [
    ("[" * 100_000 + "]" * 100_000, ["nested 100000 deep"]),
    (json.dumps({"split": "valid", "step": 1, "loss": 1.0, "token_accuracy": 0.5}),
     ["a valid record without the number(s) exact_match"]),
    (json.dumps({"split": "train", "step": 1, "loss": 1.0}), ["without the number(s) token_accuracy"]),
    ('{"split": "train", "step": 1, "loss": "' + "x" * (2**20) + '"}', ["more than the 1,048,576 allowed"]),
], ids=["deep", "valid without exact_match", "train without token_accuracy", "too long"])
def test_a_bad_metrics_line_is_named_in_the_middle_and_dropped_at_the_end(bad, words, tmp_path):
    good = json.dumps(RECORD)
    path = metrics_file(tmp_path / "metrics.jsonl", [good, bad, good])
    with pytest.raises(ValueError) as raised:
        MetricsLog(path, resume_step=5)
    assert str(raised.value).startswith(f"{path}: line 2 is not a metrics record")
    for word in words:
        assert word in str(raised.value)
    metrics_file(path, [good, good, bad])  # a torn last line
    with pytest.warns(RunWarning, match="dropped its last line"):
        log = MetricsLog(path, resume_step=5)
    assert log.read() == [RECORD, RECORD]


def test_resuming_reads_the_metrics_a_line_at_a_time(tmp_path):
    path = metrics_file(tmp_path / "metrics.jsonl", [json.dumps({**RECORD, "step": i}) for i in range(5000)])
    size = path.stat().st_size
    tracemalloc.start()
    try:
        MetricsLog(path, resume_step=3000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 5, (peak, size)  # all records as dicts take about 9 times the file
    assert len(path.read_text().splitlines()) == 3001


def test_the_learning_curves_leave_out_what_they_do_not_plot(tmp_path):
    from transformer.plots import plot_training

    records = iter([RECORD, {"split": "best", "step": 1}, {**RECORD, "split": "valid", "exact_match": 0.5}])
    assert plot_training(records, tmp_path / "t.png").is_file()


# ---------------------------------------------------------------------------- sizes


@pytest.fixture
def one_second():
    """Fail with TimeoutError where the test takes more than a second."""
    def timeout(signum, frame):
        raise TimeoutError("more than a second")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_any_number_of_training_examples_is_answered_at_once(task, one_second):
    with pytest.raises(ValueError, match="ask for fewer"):
        make_splits(task, 10**9, 500, 1000, seed=0)
    with pytest.raises(ValueError, match=f"at most {MAX_EXAMPLES:,} are made"):
        make_splits(task, MAX_EXAMPLES - 1000, 500, 501, seed=0)


def test_train_with_a_billion_examples_is_one_line_at_once(tmp_path, capsys):
    started = time.perf_counter()
    status, _, err = run_main(["train", "--task", "copy", "--model", "micro", "--n-train", str(10**9),
                               "--out", str(tmp_path), "--quiet"], capsys)
    assert_one_line_error(status, err, f"{10**9 + 2500:,} examples were requested", "ask for fewer")
    assert time.perf_counter() - started < 5

