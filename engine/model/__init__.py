"""The XTTS model folder and what is done with it outside training.

    files      the six files of a model folder, checked (`check_model`)
    tiny       a tiny random-weight XTTS model in the real layout (tests, demo)
    vocab      BPE vocabulary extension / a new language; vocab_cli: `xtts-ft vocab`
    languages  text cleaners for languages a model adds
    export     a run's checkpoint as a model folder AllTalk and coqui-tts load
    synth      speak with a model folder
"""
