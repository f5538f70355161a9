"""Where a model, tokenizer or dataset reference points, decided locally first: a path, a card
name, or a Hugging Face Hub id — so a typo or a missing folder fails at once with one line, and
the Hub is asked only for names that look like Hub ids, with one quick reachability check.

    kind = locate("qwen2.5-math-1.5", "--student", cards="students")
        # UserError: --student qwen2.5-math-1.5: ... did you mean qwen2.5-math-1.5b?
    kind = locate("runs/nosuch", "--model")        # UserError: --model runs/nosuch: no such folder
    kind = locate("Qwen/Qwen2.5-Math-1.5B", "--student", cards="students")      # "hub"
    check_hub("Qwen/Qwen2.5-Math-1.5B", "--student", local="a local model folder")

`check_hub` fails in seconds when the Hub cannot be reached (naming `HF_HUB_OFFLINE=1` and the
local alternative), and, with `HF_HUB_OFFLINE=1`, when a model is not in the local cache.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from distill.errors import UserError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # org/name, as the Hub spells repo ids
FILE_SUFFIXES = (".yaml", ".yml", ".jsonl", ".json", ".parquet", ".csv", ".safetensors", ".bin")
HUB_TIMEOUT_S = 10.0


def looks_like_path(spec: str) -> bool:
    """A local path rather than a Hub id: `./x`, `/x`, `~/x`, `a/b/c`, a known file suffix, or a
    name whose first folder exists here (`runs/nosuch` when `runs/` does)."""
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1 or spec.lower().endswith(FILE_SUFFIXES):
        return True
    head = spec.split("/", 1)[0]
    return "/" in spec and Path(head).is_dir()


def card_names(folder: str) -> dict[str, str]:
    """{card name: its model id} of the cards in `folder/` (the checkout's and the working dir's)."""
    from distill.cards import REPO_ROOT, read_yaml

    names: dict[str, str] = {}
    for base in (REPO_ROOT / folder, Path.cwd() / folder):
        for path in sorted(base.glob("*.yaml")):
            try:
                names.setdefault(path.stem, str(read_yaml(path).get("model") or ""))
            except UserError:
                continue
    return names


def suggestion(spec: str, folders: tuple[str, ...]) -> str:
    """'; did you mean X?' for the card name or card model id closest to `spec`, else ''."""
    known: dict[str, str] = {}  # candidate -> what to type
    for folder in folders:
        for name, model in card_names(folder).items():
            known[name.lower()] = name
            if model:
                known[model.lower()] = model
    near = difflib.get_close_matches(spec.lower(), list(known), n=1, cutoff=0.75)
    return f"; did you mean {known[near[0]]}?" if near else ""


def locate(spec: str, flag: str, cards: str | tuple[str, ...] = (), what: str = "folder") -> str:
    """'local' (an existing path), 'card' (a card in one of `cards`) or 'hub' (an org/name id).

    Raises `UserError` naming `flag` for a path that does not exist ("no such folder"), a card
    file that does not exist, and a name that is neither a card nor a Hub id (with the nearest
    card name when one is close). No network access.
    """
    from distill.cards import is_card

    folders = (cards,) if isinstance(cards, str) else tuple(cards)
    if Path(spec).expanduser().exists():
        return "local"
    for folder in folders:
        if is_card(spec, folder):
            return "card"
    hint = suggestion(spec, folders)
    if looks_like_path(spec):
        missing = "card not found" if spec.endswith((".yaml", ".yml")) else f"no such {what}"
        raise UserError(f"{flag} {spec}: {missing}{hint}")
    if HUB_ID.match(spec):
        return "hub"
    known = ", ".join(sorted({n for f in folders for n in card_names(f)}))
    raise UserError(
        f"{flag} {spec}: not a local {what}, "
        + (f"a card ({known}) " if known else "")
        + f"or a Hub id (org/name){hint}"
    )


def check_hub(repo_id: str, flag: str, local: str, repo_type: str = "model", card: str | None = None) -> None:
    """Fail fast, before any download, when Hub id `repo_id` cannot be fetched.

    Online: one metadata request (`HUB_TIMEOUT_S` at most, no retries); an unreachable Hub or an
    unknown repo is a `UserError` naming `flag`, `HF_HUB_OFFLINE=1` and `local` (the command's
    local alternative). Offline (`HF_HUB_OFFLINE=1`): the repo must be in the local cache. A gated
    or private repo passes (the loader then says what it needs). `card`: the card name the user
    gave, when `repo_id` came from a card.
    """
    from huggingface_hub import constants

    where = f"{flag} {card} ({repo_id})" if card else f"{flag} {repo_id}"

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        if not _cached(repo_id, repo_type):
            raise UserError(
                f"{where}: not in the local Hugging Face cache and HF_HUB_OFFLINE=1 is set; "
                f"give {local}, or unset HF_HUB_OFFLINE to download it"
            )
        return
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return
    except RepositoryNotFoundError:
        raise UserError(
            f"{where}: no such {repo_type} on the Hugging Face Hub (a private one needs "
            f"`hf auth login`){suggestion(repo_id, ('students', 'teachers'))}"
        ) from None
    except HfHubHTTPError:
        return  # the Hub answered; the loader reports anything else
    except Exception as e:  # noqa: BLE001 - connection refused, unknown host, timeout ...
        reason = str(e).splitlines()[0][:160] if str(e) else ""
        raise UserError(
            f"{where}: cannot reach the Hugging Face Hub at {constants.ENDPOINT} "
            f"({type(e).__name__}: {reason}); offline, give {local}, or set HF_HUB_OFFLINE=1 "
            "to use a cached copy"
        ) from None


def _cached(repo_id: str, repo_type: str) -> bool:
    """A model with its config in the Hub cache; a dataset in the Hub cache or `datasets`' own."""
    from huggingface_hub import constants, try_to_load_from_cache

    if repo_type == "model":
        return any(
            isinstance(try_to_load_from_cache(repo_id, name), str)
            for name in ("config.json", "tokenizer_config.json")
        )
    from datasets import config

    hub = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}"
    return hub.exists() or (Path(config.HF_DATASETS_CACHE) / repo_id.replace("/", "___")).exists()
