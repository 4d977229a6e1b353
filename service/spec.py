"""A job's configuration as plain data (nanoGPT style): written to the store as jobs/<id>/job.json.

Nothing secret ever goes in here: the store URI and settings only, never endpoints or keys.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import asdict, dataclass, field, fields

from service.errors import UserError

# Networks. `tiny` is for tests and the CPU demo; `fast` is the default cloud network (token
# embedding, cuDNN-eligible: no recurrent dropout, logits + sparse cross-entropy); `paper` is the
# paper's network exactly (normalized token ids in, 3 x LSTM 512 with recurrent dropout 0.3,
# BatchNorm/Dropout/Dense 256 head, softmax, RMSprop, batch 128, next-token target), for comparison
# runs. Flags override any field. `accelerate`: mixed precision and XLA on a GPU that supports them
# (job/accelerate.py); the paper preset stays in float32 as the paper trained it.
PRESETS: dict[str, dict[str, object]] = {
    "tiny": {"architecture": "embedding", "embedding": 32, "units": 64, "layers": 1, "dropout": 0.0,
             "seq_len": 32, "batch_size": 32, "learning_rate": 3e-3, "accelerate": True,
             "steps_per_epoch": 100},  # a demo corpus is one pass in ~20 steps: too short to judge an epoch
    "fast": {"architecture": "embedding", "embedding": 128, "units": 512, "layers": 2, "dropout": 0.2,
             "seq_len": 128, "batch_size": 64, "learning_rate": 1e-3, "scheme": "remi", "accelerate": True},
    "paper": {"architecture": "paper", "units": 512, "layers": 3, "dropout": 0.3, "recurrent_dropout": 0.3,
              "dense": 256, "seq_len": 100, "batch_size": 128, "learning_rate": 1e-3, "optimizer": "rmsprop",
              "scheme": "notes-chords"},
}


MAX_STORE_TIMEOUT = 86_400.0  # a day: past that a store is not coming back for this job
MAX_SEED = 2**32 - 1  # the seeds Keras (keras.utils.set_random_seed) and NumPy's legacy generator take
# A job or `composer generate` samples, engraves and renders each piece (about 10 s each for 2,000 notes on a
# laptop core): more than this many pieces, or notes a piece, is a mistake, and the decoders refuse far less
# than their own limits would (65,536 streams; a performance holds under 3,600,000 notes) only after training.
MAX_SAMPLES = 1024
MAX_LENGTH = 100_000
MAX_TEST_SHARE = 0.5  # a larger held-out share would leave less to train on than to test
CONDITIONS = ("none", "composer")  # --condition
# The networks' names, which model/architecture.py registers (a test keeps the two equal): named here so
# that checking a spec does not import the networks, which import this module.
ARCHITECTURE_NAMES = ("embedding", "paper")


@dataclass
class JobSpec:
    job_id: str
    dataset: str
    store: str
    # The content digest of a sharded dataset when the job was submitted: lets the job find tokens
    # cached for the same inputs without reading anything of the dataset ("" when not known).
    dataset_digest: str = ""
    scheme: str = "notes-chords"
    # The sustain pedal (controller 64): "apply" lengthens the notes it holds while tokenizing (what a
    # listener hears; GiantMIDI-Piano's recordings are pedalled), "ignore" keeps key-press lengths.
    pedal: str = "apply"
    composers: list[str] = field(default_factory=list)
    preset: str = "fast"
    architecture: str = "embedding"
    embedding: int = 128
    units: int = 512
    layers: int = 2
    dropout: float = 0.2
    recurrent_dropout: float = 0.0  # > 0 disables cuDNN: only the paper preset uses it
    dense: int = 256  # the paper's head; unused by the embedding network
    optimizer: str = "adam"
    key_conditioning: bool = False  # a one-hot key vector beside every input token (needs a remi+key scheme)
    # What else every input token is fed with (model/composers.py): "none", or "composer", a learned
    # embedding of each piece's composer read from its file name.
    condition: str = "none"
    accelerate: bool = False  # mixed precision + XLA auto-clustering when a capable GPU is present
    seq_len: int = 128
    batch_size: int = 64  # per worker: the global batch is batch_size * workers
    learning_rate: float = 1e-3
    epochs: int = 50
    patience: int = 5
    steps_per_epoch: int | None = None
    validation_fraction: float = 0.1
    # The held-out test pieces' share (model/testsplit.py): never trained on, never early stopping's,
    # never primers; scored once after training. 0 turns the test score off.
    test_share: float = 0.1
    # Training-time augmentation (model/augment.py): none, transpose, stretch or transpose,stretch, with
    # optional amounts (transpose=SEMITONES, stretch=FRACTION). Drawn per global batch from the seed.
    augment: str = "transpose,stretch"
    workers: int = 2
    gpus_per_worker: float = 0.0
    autoscale_wait: float = 600.0  # seconds to wait for an autoscaler to add room for the workers
    # Seconds the job's processes keep retrying a store call that gets no answer (an S3 outage, throttling)
    # before the job fails with one line naming the store and the key (storage/store.py: S3Store).
    store_timeout: float = 300.0
    # What the training workers' devices cost (model/cost.py): one device for an hour, or an instance type
    # of composer's price table, on-demand or spot. None and "": device-seconds only, no cost.
    price_per_hour: float | None = None
    instance_type: str = ""
    spot: bool = False
    samples: int = 4
    sample_length: int = 256  # notes per generated piece (--length), in every scheme
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    created: float = field(default_factory=time.time)

    def sampling(self):
        from service.music.sampling import Sampling

        return Sampling(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: dict) -> JobSpec:
        """A stored spec's fields (job.json), with the defaults of jobs submitted before a field existed."""
        data = dict(data)
        # A job submitted before the held-out split trained on every piece: it has none.
        data.setdefault("test_share", 0.0)
        # A job submitted before the pedal was read tokenized key-press lengths.
        data.setdefault("pedal", "ignore")
        # A job submitted before augmentation trained on its windows as they are: resumed, it still does.
        data.setdefault("augment", "none")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def new_job_id() -> str:
    """Sortable, unique and safe as a Ray submission id and an S3 key part."""
    return time.strftime("composer-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


def build_spec(job_id: str, dataset: str, store: str, preset: str, **overrides: object) -> JobSpec:
    """Preset values first, then every override the user actually gave (None means not given)."""
    check_choices(preset=preset)
    values: dict[str, object] = dict(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values.get("key_conditioning") and overrides.get("scheme") is None:
        from service.music.keys import KEY_SCHEMES

        if values.get("scheme") not in KEY_SCHEMES:
            values["scheme"] = "remi+key-estimated"  # the key of every piece, estimated from its notes
    spec = JobSpec(job_id=job_id, dataset=dataset, store=store, preset=preset, **values)  # type: ignore[arg-type]
    validate(spec)
    return spec


def option_flag(name: str) -> str:
    """The submit option that sets a spec field."""
    return "length" if name == "sample_length" else name.replace("_", "-")


def check_choices(preset: str | None = None, scheme: str | None = None, pedal: str | None = None,
                  condition: str | None = None) -> None:
    """The flags that name one of a few choices (None: not given): a wrong one is refused in one line that
    lists the choices. `submit` asks first, before it opens the store or reads a job to continue."""
    import fastparse

    for flag, value, choices in (("preset", preset, sorted(PRESETS)), ("--scheme", scheme, fastparse.SCHEMES),
                                 ("--pedal", pedal, fastparse.PEDAL_MODES), ("--condition", condition, CONDITIONS)):
        if value is not None and value not in choices:
            raise UserError(f"unknown {flag} {value!r}: choose one of {', '.join(choices)}")


def validate(spec: JobSpec) -> None:
    for f in fields(spec):  # typer reads "nan" and "inf" as floats: no setting is either
        value = getattr(spec, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"--{option_flag(f.name)} must be a finite number, got {value}")
    positive = ["embedding", "units", "layers", "seq_len", "batch_size", "epochs", "workers", "samples",
                "sample_length"]
    for name in positive:
        if getattr(spec, name) < 1:
            raise UserError(f"--{option_flag(name)} must be at least 1, got {getattr(spec, name)}")
    for name, most in (("samples", MAX_SAMPLES), ("sample_length", MAX_LENGTH)):
        if getattr(spec, name) > most:
            raise UserError(f"--{option_flag(name)} must be 1 to {most}, got {getattr(spec, name)}")
    if spec.patience < 0:
        raise UserError(f"--patience must be 0 or more, got {spec.patience}")
    if not 0 <= spec.seed <= MAX_SEED:  # Keras's set_random_seed takes no other (the job would fail in training)
        raise UserError(f"--seed must be 0 to {MAX_SEED}, got {spec.seed}")
    if spec.steps_per_epoch is not None and spec.steps_per_epoch < 1:
        raise UserError(f"--steps-per-epoch must be at least 1, got {spec.steps_per_epoch}")
    if spec.autoscale_wait < 0:
        raise UserError(f"--autoscale-wait must be 0 or more seconds, got {spec.autoscale_wait}")
    from service.model import cost

    wrong_price = cost.check(spec.price_per_hour, spec.instance_type, spec.spot)
    if wrong_price is not None:
        raise UserError(wrong_price)
    if not 0 <= spec.store_timeout <= MAX_STORE_TIMEOUT:
        raise UserError(f"--store-timeout must be 0 to {MAX_STORE_TIMEOUT:g} seconds, got {spec.store_timeout:g}")
    if spec.gpus_per_worker < 0:
        raise UserError(f"--gpus-per-worker must be 0 or more, got {spec.gpus_per_worker}")
    if spec.gpus_per_worker > 1 and spec.gpus_per_worker != int(spec.gpus_per_worker):
        raise UserError(f"--gpus-per-worker above 1 must be whole GPUs, got {spec.gpus_per_worker}")
    if not 0.0 <= spec.test_share <= MAX_TEST_SHARE:
        raise UserError(f"--test-share must be in [0, {MAX_TEST_SHARE}] (0: no held-out test score), "
                        f"got {spec.test_share}")
    if not 0.0 <= spec.dropout < 1.0:
        raise UserError(f"dropout must be in [0, 1), got {spec.dropout}")
    if spec.architecture not in ARCHITECTURE_NAMES:
        raise UserError(f"unknown architecture {spec.architecture!r}: one of {', '.join(ARCHITECTURE_NAMES)}")
    if spec.optimizer not in ("adam", "rmsprop"):
        raise UserError(f"unknown optimizer {spec.optimizer!r}: adam or rmsprop")
    if spec.learning_rate <= 0:
        raise UserError(f"--learning-rate must be above 0, got {spec.learning_rate}")
    spec.sampling()  # validates temperature, top-k, top-p
    from service.model.augment import parse as parse_augment

    parse_augment(spec.augment)  # one line naming the choices
    check_choices(scheme=spec.scheme, pedal=spec.pedal, condition=spec.condition)
    from service.music.keys import KEY_SCHEMES

    if spec.key_conditioning and spec.scheme not in KEY_SCHEMES:
        raise UserError(f"--key-conditioning needs a scheme with key tokens ({' or '.join(KEY_SCHEMES)}), "
                        f"not --scheme {spec.scheme}")
