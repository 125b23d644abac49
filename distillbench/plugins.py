"""The plug-in list: where every built-in method, benchmark, judge, model backend, kind, report, architecture,
everything the pocket worlds provide (models, data sources, networks), and every command lives.

The registries (`distillbench.core.registry`) read this list by name on their first lookup,
so looking up one name imports only the module that registers it, and listing imports all.
It is the one module allowed to import distillbench modules inside a function; it needs none
today, as the registry imports the modules named here by name.

Adding a built-in: register it with its decorator (`register_method`, `register_benchmark`,
`JUDGES.register`, ...) as before, then add ``"name": "module:object"`` to its group below,
one line for the name and one for each alias. tests/test_registry.py fails while a module
registers a name this list lacks, or a line points at an object other than the registered one.

Registering from another package: declare entry points in its pyproject.toml, one group per
registry, the entry point's name being the name to register:

    [project.entry-points."distillbench.methods"]
    my-sft = "my_plugin:MySFT"

Groups: ``distillbench.methods``, ``distillbench.benchmarks``, ``distillbench.kinds``,
``distillbench.judges``, ``distillbench.model_backends``, ``distillbench.reports``, ``distillbench.architectures``,
``distillbench.pocket_models``, ``distillbench.pocket_data``, ``distillbench.pocket_networks``.
The object may use distillbench's decorator under the same name; otherwise the entry point registers it (family: its ``family``
attribute, else "third-party"; summary: its docstring's first line). A name that a built-in
already has is an error.
"""

from __future__ import annotations

# The command line's commands: `distillbench COMMAND` imports its module when it runs, so `--help` and a
# command that needs no model never import torch (the parser itself lives in distillbench.cli.main).
COMMANDS: dict[str, str] = {
    "compare": "distillbench.cli.compare:compare_command",
    "leaderboard": "distillbench.cli.leaderboard:leaderboard_command",
    "list": "distillbench.cli.listing:list_command",
    "report": "distillbench.cli.report:report_command",
    "run": "distillbench.cli.run:run_command",
    "score": "distillbench.cli.score:score_command",
    "zoo": "distillbench.cli.zoo:zoo_command",
}

BUILTINS: dict[str, dict[str, str]] = {
    "methods": {
        "ce": "distillbench.methods.classify.ce:CE",
        "cprd": "distillbench.methods.classify.cprd:CPRD",
        "dhkd": "distillbench.methods.classify.dhkd:DHKD",
        "dho": "distillbench.methods.classify.dho:DHO",
        "distill-nearest": "distillbench.methods.classify.distill_nearest:DistillNearest",
        "distill-weighted": "distillbench.methods.classify.distill_weighted:DistillWeighted",
        "distiller-mi": "distillbench.methods.classify.distiller_mi:DistillerMI",
        "diswot": "distillbench.methods.classify.diswot:DisWOT",
        "dkd": "distillbench.methods.classify.dkd:DKD",
        "dmjd": "distillbench.methods.classify.dmjd:DMJD",
        "fair-latent": "distillbench.methods.classify.fair_latent:FairLatent",
        "hinton-kd": "distillbench.methods.classify.hinton_kd:HintonKD",
        "hybrid-distill": "distillbench.methods.classify.hybrid_distill:HybridDistill",
        "info-nce": "distillbench.methods.classify.info_nce:InfoNCE",
        "lelp": "distillbench.methods.classify.lelp:LELP",
        "pld": "distillbench.methods.classify.pld:PLD",
        "self-distill-gt": "distillbench.methods.classify.self_distill_gt:SelfDistillGT",
        "cv-dd": "distillbench.methods.dataset_distillation.cv_dd:CVDD",
        "random-real": "distillbench.methods.dataset_distillation.random_real:RandomReal",
        "random-real-committee": "distillbench.methods.dataset_distillation.random_real_committee:RandomRealCommittee",
        "dmd2": "distillbench.methods.diffusion.dmd2:DMD2",
        "sid": "distillbench.methods.diffusion.sid:SiD",
        "lcm": "distillbench.methods.diffusion.lcm:LCM",
        "adpa": "distillbench.methods.llm.adpa:ADPA",
        "adpa+": "distillbench.methods.llm.adpa_plus:ADPAPlus",
        "adpo": "distillbench.methods.llm.adpo:ADPO",
        "curry-dpo": "distillbench.methods.llm.curry_dpo:CurryDPO",
        "dckd": "distillbench.methods.llm.dckd:DCKD",
        "distillm": "distillbench.methods.llm.distillm:DistiLLM",
        "dpo": "distillbench.methods.llm.dpo:DPO",
        "gkd": "distillbench.methods.llm.gkd:GKD",
        "ipo": "distillbench.methods.llm.ipo:IPO",
        "kd": "distillbench.methods.llm.kd:KD",
        "mcts-dpo": "distillbench.methods.llm.mcts_dpo:MCTSDPO",
        "redi": "distillbench.methods.llm.redi:REDI",
        "rkl": "distillbench.methods.llm.rkl:RKL",
        "sft": "distillbench.methods.llm.sft:SFT",
        "simpo": "distillbench.methods.llm.simpo:SimPO",
        "spo": "distillbench.methods.llm.spo:SPO",
        "teacher-hacking": "distillbench.methods.llm.teacher_hacking:TeacherHacking",
        "teacher-ref-dpo": "distillbench.methods.llm.teacher_ref_dpo:TeacherRefDPO",
        "tvd": "distillbench.methods.llm.tvd:TVD",
    },
    "benchmarks": {
        "points-2d": "distillbench.benchmarks.points:Points2D",
        "clip-score": "distillbench.benchmarks.clip_score:ClipScore",
        "clipscore": "distillbench.benchmarks.clip_score:ClipScore",
        "pocket-clip-score": "distillbench.pocket.benchmarks.pocket_images:PocketClipScore",
        "pocket-clipscore": "distillbench.pocket.benchmarks.pocket_images:PocketClipScore",
        "dd-accuracy": "distillbench.benchmarks.dd_accuracy:DDAccuracy",
        "fair-synthetic": "distillbench.benchmarks.fairness:FairSynthetic",
        "gsm8k": "distillbench.benchmarks.gsm8k:GSM8K",
        "math": "distillbench.benchmarks.hendrycks_math:MATH",
        "math500": "distillbench.benchmarks.hendrycks_math:MATH500",
        "geneval": "distillbench.benchmarks.geneval:GenEval",
        "pocket-geneval": "distillbench.pocket.benchmarks.pocket_images:PocketGenEval",
        "fid": "distillbench.benchmarks.image_sets:FID",
        "kid": "distillbench.benchmarks.image_sets:KID",
        "pocket-fid": "distillbench.pocket.benchmarks.pocket_images:PocketFID",
        "pocket-kid": "distillbench.pocket.benchmarks.pocket_images:PocketKID",
        "linear-probe": "distillbench.benchmarks.linear_probe:LinearProbe",
        "lm-eval": "distillbench.benchmarks.lm_eval_bridge:LMEvalTask",
        "mtbench": "distillbench.benchmarks.mtbench:MTBench",
        "pocket-mtbench": "distillbench.pocket.benchmarks.pocket_mtbench:PocketMTBench",
        "pocket-math": "distillbench.pocket.benchmarks.pocket_math:PocketMath",
        "pocket-retrieval": "distillbench.pocket.benchmarks.pocket_retrieval:PocketRetrieval",
        "pocket-rewardbench": "distillbench.pocket.benchmarks.pocket_rewardbench:PocketRewardBench",
        "rewardbench": "distillbench.benchmarks.rewardbench:RewardBench",
        "cifar100": "distillbench.benchmarks.top1:Cifar100",
        "top1": "distillbench.benchmarks.top1:Top1",
        "chair": "distillbench.benchmarks.vlm.benchmarks:CHAIR",
        "pope": "distillbench.benchmarks.vlm.benchmarks:POPE",
        "videohallucer": "distillbench.benchmarks.vlm.benchmarks:VideoHallucer",
        "vqav2": "distillbench.benchmarks.vlm.benchmarks:VQAv2",
        "pocket-chair": "distillbench.pocket.benchmarks.pocket_vlm:PocketCHAIR",
        "pocket-pope": "distillbench.pocket.benchmarks.pocket_vlm:PocketPOPE",
        "pocket-videohallucer": "distillbench.pocket.benchmarks.pocket_vlm:PocketVideoHallucer",
        "pocket-vqa": "distillbench.pocket.benchmarks.pocket_vlm:PocketVQA",
    },
    "judges": {
        "hf-chat": "distillbench.benchmarks.judges.hf:HFChatJudge",
        "openai-http": "distillbench.benchmarks.judges.http:OpenAIHTTPJudge",
        "pocket-oracle": "distillbench.pocket.benchmarks.pocket_oracle:PocketOracleJudge",
    },
    "model_backends": {
        "hf": "distillbench.core.models:_hf_backend",
        "local": "distillbench.core.models:_local_backend",
        "pocket": "distillbench.core.models:_pocket_backend",
    },
    "kinds": {
        "dataset-distillation": "distillbench.kinds.image_classifier.dataset_distillation.kind:DatasetDistillation",
        "diffusion": "distillbench.kinds.diffusion.kind:Diffusion",
        "image-classifier": "distillbench.kinds.image_classifier.kind:ImageClassifier",
        "retrieval": "distillbench.kinds.retrieval.kind:Retrieval",
        "tabular": "distillbench.kinds.tabular.kind:Tabular",
        "text-lm": "distillbench.kinds.text_lm.kind:TextLM",
        "text-to-image": "distillbench.kinds.text_to_image.kind:TextToImageKind",
        "vlm": "distillbench.kinds.vlm.kind:VisionLanguageModel",
    },
    "architectures": {
        "resnet8": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "resnet14": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "resnet20": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "resnet32": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "resnet44": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "resnet56": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "resnet110": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "resnet8x4": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "resnet32x4": "distillbench.kinds.image_classifier.cifar_models:CifarResNet",
        "wrn_16_1": "distillbench.kinds.image_classifier.cifar_models:WideResNet",
        "wrn_16_2": "distillbench.kinds.image_classifier.cifar_models:WideResNet",
        "wrn_40_1": "distillbench.kinds.image_classifier.cifar_models:WideResNet",
        "wrn_40_2": "distillbench.kinds.image_classifier.cifar_models:WideResNet",
        "open-clip-zeroshot": "distillbench.kinds.image_classifier.clip_zeroshot:CLIPZeroShot",
        "shapes-vit-tiny": "distillbench.kinds.image_classifier.vit:PocketViT",
        "shapes-cnn": "distillbench.pocket.shapes_cnn:ShapesCNN",
        "shapes-cnn-small": "distillbench.pocket.shapes_cnn:ShapesCNN",
        "shapes-cnn-4-8-8": "distillbench.pocket.shapes_cnn:ShapesCNN",
        "shapes-cnn-4-8-16": "distillbench.pocket.shapes_cnn:ShapesCNN",
        "shapes-cnn-8-8-16": "distillbench.pocket.shapes_cnn:ShapesCNN",
        "shapes-cnn-8-16+16-32": "distillbench.pocket.shapes_cnn:ShapesCNN",
        "shapes-cnn-16-16-32": "distillbench.pocket.shapes_cnn:ShapesCNN",
        "shapes-cnn-8+8-16-32+32": "distillbench.pocket.shapes_cnn:ShapesCNN",
        "shapes-cnn-16-32-64": "distillbench.pocket.shapes_cnn:ShapesCNN",
    },
    "pocket_models": {
        "student-init": "distillbench.pocket.zoo:ensure_built",
        "teacher-sft": "distillbench.pocket.zoo:ensure_built",
        "teacher-aligned": "distillbench.pocket.zoo:ensure_built",
        "shapes-teacher-many": "distillbench.pocket.shapes_classifiers:ensure_built",
        "shapes-teacher-shape": "distillbench.pocket.shapes_classifiers:ensure_built",
        "shapes-teacher-binary": "distillbench.pocket.shapes_classifiers:ensure_built",
        "shapes-clip-zeroshot-many": "distillbench.pocket.shapes_clip_zeroshot:ensure_named",
        "shapes-clip-zeroshot-shape": "distillbench.pocket.shapes_clip_zeroshot:ensure_named",
        "shapes-clip-zeroshot-binary": "distillbench.pocket.shapes_clip_zeroshot:ensure_named",
        "t2i-teacher": "distillbench.pocket.t2i_zoo:model_dir",
        "gaussians2d-teacher": "distillbench.pocket.gaussians2d:model_dir",
        "shapes-cross-encoder": "distillbench.pocket.shapes_retrieval:ensure_teacher",
    },
    "pocket_data": {
        "pocket:fair": "distillbench.pocket.fair_tabular:generate",
        "pocket:math": "distillbench.pocket.text_sources:math_records",
        "pocket:math-preference": "distillbench.pocket.text_sources:preference_pairs_file",
        "pocket:math-ranked": "distillbench.pocket.text_sources:ranked_lists_file",
        "pocket:shapes-many": "distillbench.pocket.shapes_classifiers:pocket_dataset",
        "pocket:shapes-shape": "distillbench.pocket.shapes_classifiers:pocket_dataset",
        "pocket:shapes-binary": "distillbench.pocket.shapes_classifiers:pocket_dataset",
        "pocket:shapes-captions": "distillbench.pocket.shapes_retrieval:caption_pairs",
    },
    "pocket_networks": {
        "shapes-feature-map": "distillbench.pocket.shapes_vit:FeatureMapTeacher",
        "shapes-vit-mae": "distillbench.pocket.shapes_vit:load_mae_teacher",
        "shapes-features": "distillbench.pocket.shapes_features:PocketFeatureExtractor",
        "shapes-detector": "distillbench.pocket.shapes_detector:detect",
    },
    "reports": {
        "autodistiller": "distillbench.pocket.autodistiller_report:AutoDistillerReport",
        "diswot": "distillbench.pocket.diswot_report:DisWOTReport",
    },
}
