"""A bare coqui-tts XTTS GPT finetuning script, shaped like coqui's own recipe
(recipes/ljspeech/xtts_v2/train_gpt_xtts.py): GPTArgs + GPTTrainerConfig + Trainer.fit().
The only addition is an `on_train_step_end` callback that records a timestamp per step.

    python bench/bare_coqui_train.py MODEL_DIR DATASET_DIR OUT_DIR EPOCHS BATCH WORKERS THREADS SEED
"""

import json
import os
import sys
import time

import torch

model_dir, dataset, out, epochs, batch, workers, threads, seed = sys.argv[1:9]
torch.set_num_threads(int(threads))

from TTS.config.shared_configs import BaseDatasetConfig  # noqa: E402
from TTS.tts.configs.xtts_config import XttsAudioConfig  # noqa: E402
from TTS.tts.datasets import load_tts_samples  # noqa: E402
from TTS.tts.layers.xtts.trainer.gpt_trainer import GPTArgs, GPTTrainer, GPTTrainerConfig  # noqa: E402
from trainer import Trainer, TrainerArgs  # noqa: E402

torch.set_num_threads(int(threads))  # the XTTS dataset module sets 1 on import; same threads as the engine

base = json.load(open(os.path.join(model_dir, "config.json")))
names = set(GPTArgs.__dataclass_fields__)
margs = {k: v for k, v in base["model_args"].items() if k in names}
margs.update(
    max_conditioning_length=132300, min_conditioning_length=66150, debug_loading_failures=False,
    max_wav_length=int(11.0 * 22050), max_text_length=200,
    mel_norm_file=os.path.join(model_dir, "mel_stats.pth"), dvae_checkpoint=os.path.join(model_dir, "dvae.pth"),
    xtts_checkpoint=os.path.join(model_dir, "model.pth"), tokenizer_file=os.path.join(model_dir, "vocab.json"),
    gpt_num_audio_tokens=1026, gpt_start_audio_token=1024, gpt_stop_audio_token=1025,
    gpt_use_masking_gt_prompt_approach=True, gpt_use_perceiver_resampler=True,
)
config = GPTTrainerConfig(
    epochs=int(epochs), output_path=out, model_args=GPTArgs(**margs), run_name="bare", project_name="bench",
    run_description="bare coqui recipe", dashboard_logger="tensorboard",
    audio=XttsAudioConfig(sample_rate=22050, dvae_sample_rate=22050, output_sample_rate=24000),
    batch_size=int(batch), batch_group_size=0, eval_batch_size=int(batch), num_loader_workers=int(workers),
    num_eval_loader_workers=min(int(workers), 2), eval_split_max_size=256, print_step=25, plot_step=100,
    log_model_step=1000, save_step=10000, save_n_checkpoints=1, save_checkpoints=True, print_eval=False,
    optimizer="AdamW", optimizer_wd_only_on_weights=True,
    optimizer_params={"betas": [0.9, 0.96], "eps": 1e-8, "weight_decay": 1e-2}, lr=5e-06,
    lr_scheduler="MultiStepLR", lr_scheduler_params={"milestones": [50000 * 18], "gamma": 0.5, "last_epoch": -1},
    scheduler_after_epoch=False, training_seed=int(seed), test_sentences=[], languages=base["languages"],
)
dcfg = BaseDatasetConfig(formatter="coqui", dataset_name="bench", path=dataset, meta_file_train="metadata_train.csv",
                         meta_file_val="metadata_eval.csv", language="en")
from TTS.tts.configs.shared_configs import BaseTTSConfig  # noqa: E402

train_samples, eval_samples = load_tts_samples(BaseTTSConfig(datasets=[dcfg]), eval_split=True)
model = GPTTrainer.init_from_config(config)
stamps = []
trainer = Trainer(
    TrainerArgs(restore_path=None, skip_train_epoch=False, start_with_eval=False, grad_accum_steps=1),
    config, output_path=out, model=model, train_samples=train_samples, eval_samples=eval_samples,
    parse_command_line_args=False,
    callbacks={"on_train_step_end": lambda t: stamps.append((t.epochs_done, time.time(), time.process_time())),
               "on_train_epoch_start": lambda t: stamps.append((-1, time.time(), time.process_time()))},
)
trainer._fit()  # fit() would also delete the output folder on exit; the loop is the same
json.dump({"stamps": stamps}, open(os.path.join(out, "stamps.json"), "w"))
