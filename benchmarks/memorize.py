"""Benchmark: memorize an 8k-token haystack with a needle into builtin:tiny.

Prints JSON lines:
  {"benchmark": "memorize", ...}   seconds of training until the needle comes back from a bare prompt,
                                   training tokens/s, peak RSS, document perplexity before/after
  {"benchmark": "memorize_vs_hf_trainer", ...}  our trainer's tokens/s against a plain Hugging Face Trainer
                                   + peft on the same model and examples, in the same run (the ratio)

Usage: python benchmarks/memorize.py [--tokens 8192] [--baseline-steps 40]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ours(memory, text, needle) -> dict:
    from lift_memory.eval.niah.scoring import keyword_score
    from lift_memory.eval.probe import RecallProbe, bare_completion

    ppl_before = memory.perplexity(text)
    recalled_before = keyword_score(bare_completion(memory, needle.prefix), needle.keywords)
    probe = RecallProbe(memory, needle, every=5)
    record = memory.memorize(text, doc_id="bench-haystack", replace=True, callbacks=[probe])
    return {
        "benchmark": "memorize",
        "model": memory.config.model.name,
        "document_tokens": record.n_tokens,
        "seconds_to_recall": probe.recalled_at_seconds,
        "steps_to_recall": probe.recalled_at_step,
        "train_seconds": record.train.seconds,
        "train_steps": record.train.steps,
        "stop_reason": record.train.stop_reason,
        "tokens_per_second": record.train.tokens_per_second,
        "peak_rss_mb": _peak_rss_mb(),
        "perplexity_before": round(ppl_before, 3),
        "perplexity_after": round(memory.perplexity(text, record.doc_id), 3),
        "recall_before": recalled_before,
        "recall_after": keyword_score(memory.complete(needle.prefix, record.doc_id), needle.keywords),
        "target": "seconds_to_recall <= 30 on 2 CPU cores",
    }


def throughput(memory, text, steps: int) -> dict:
    """The same examples through our trainer and through transformers.Trainer, for a fixed number of steps."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from lift_memory.segment import tokenize
    from lift_memory.tasks.lm import lm_examples
    from lift_memory.train.loop import Trainer as OurTrainer

    eng = memory.engine
    examples, _ = lm_examples(tokenize(text, eng.tokenizer), eng.segmenter, eng.tokenizer, eng.base.prefix_ids)
    train = eng.train_config.model_copy(update={"max_steps": steps, "plateau_patience": None})
    eng.adapter.reset()
    ours_stats = OurTrainer(eng.adapter.model, eng.adapter.parameters(), train, pad_id=eng.pad_id, progress=False).fit(
        examples
    )

    # The baseline: a fresh copy of the base model with the same LoRA layout, examples padded per batch by a
    # standard collator, batches of 8 as a typical Trainer user would choose.
    base_dir = eng.base.model.config._name_or_path
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    lora = eng.adapter.config
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            target_modules=lora.target_modules,
            modules_to_save=["embed_tokens"] if eng.adapter.train_embeddings else None,
            ensure_weight_tying=eng.adapter.train_embeddings,
        ),
    )
    rows = [{"input_ids": list(e.input_ids), "labels": list(e.input_ids)} for e in examples]
    collate = DataCollatorForSeq2Seq(eng.tokenizer, padding=True, label_pad_token_id=-100)

    def hf_tokens_per_second(group_by_length: bool) -> float:
        counted = {"tokens": 0}

        def counting_collator(batch):
            counted["tokens"] += sum(len(r["input_ids"]) for r in batch)
            return collate(batch)

        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out,
                per_device_train_batch_size=8,
                max_steps=steps,
                learning_rate=train.learning_rate,
                warmup_steps=train.warmup_steps,
                lr_scheduler_type="constant_with_warmup",
                train_sampling_strategy="group_by_length" if group_by_length else "random",
                save_strategy="no",
                report_to=[],
                logging_strategy="no",
                disable_tqdm=True,
                use_cpu=True,
                seed=train.seed,
                dataloader_num_workers=0,
            )
            trainer = Trainer(model=peft_model, args=args, train_dataset=rows, data_collator=counting_collator)
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # Trainer prints its own summary; keep stdout JSON
                trainer.train()
            return counted["tokens"] / (time.perf_counter() - started)

    plain, grouped = hf_tokens_per_second(False), hf_tokens_per_second(True)
    return {
        "benchmark": "memorize_vs_hf_trainer",
        "model": memory.config.model.name,
        "steps": steps,
        "ours_tokens_per_second": ours_stats.tokens_per_second,
        "hf_trainer_tokens_per_second": round(plain, 1),
        "ratio": round(ours_stats.tokens_per_second / plain, 2),
        "hf_trainer_group_by_length_tokens_per_second": round(grouped, 1),
        "ratio_vs_group_by_length": round(ours_stats.tokens_per_second / grouped, 2),
        "target": "ratio >= 1.5",
        "note": "tokens = real (non-pad) tokens; HF Trainer: batch 8, padded to the longest in the batch",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--baseline-steps", type=int, default=40)
    args = parser.parse_args()

    from lift_memory import LiftMemory
    from lift_memory.eval.niah.haystack import Needle, build_haystack, corpus_texts, insert_needle

    with tempfile.TemporaryDirectory() as root:
        memory = LiftMemory(root=root, progress=False)
        needle = Needle()
        tok = memory.engine.tokenizer
        text, _ = insert_needle(build_haystack(tok, args.tokens, corpus_texts()), needle.text, 0.5, tok)
        print(json.dumps(ours(memory, text, needle)), flush=True)
        print(json.dumps(throughput(memory, text, args.baseline_steps)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
