"""The plug-in list: where every built-in method, benchmark, judge, model backend, kind and report lives.

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
``distillbench.judges``, ``distillbench.model_backends``, ``distillbench.reports``. The object may use distillbench's
decorator under the same name; otherwise the entry point registers it (family: its ``family``
attribute, else "third-party"; summary: its docstring's first line). A name that a built-in
already has is an error.
"""

from __future__ import annotations

BUILTINS: dict[str, dict[str, str]] = {
    "methods": {
        "ce": "distillbench.methods.classify.ce:CE",
        "cprd": "distillbench.methods.classify.cprd:CPRD",
        "cv-dd": "distillbench.methods.classify.cv_dd:CVDD",
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
        "clip-score": "distillbench.benchmarks.clip_score:ClipScore",
        "clipscore": "distillbench.benchmarks.clip_score:ClipScore",
        "pocket-clip-score": "distillbench.benchmarks.clip_score:PocketClipScore",
        "pocket-clipscore": "distillbench.benchmarks.clip_score:PocketClipScore",
        "dd-accuracy": "distillbench.benchmarks.dd_accuracy:DDAccuracy",
        "fair-synthetic": "distillbench.benchmarks.fairness:FairSynthetic",
        "gsm8k": "distillbench.benchmarks.gsm8k:GSM8K",
        "math": "distillbench.benchmarks.hendrycks_math:MATH",
        "math500": "distillbench.benchmarks.hendrycks_math:MATH500",
        "geneval": "distillbench.benchmarks.image_benchmarks:GenEval",
        "pocket-geneval": "distillbench.benchmarks.image_benchmarks:PocketGenEval",
        "fid": "distillbench.benchmarks.image_sets:FID",
        "kid": "distillbench.benchmarks.image_sets:KID",
        "pocket-fid": "distillbench.benchmarks.image_sets:PocketFID",
        "pocket-kid": "distillbench.benchmarks.image_sets:PocketKID",
        "linear-probe": "distillbench.benchmarks.linear_probe:LinearProbe",
        "lm-eval": "distillbench.benchmarks.lm_eval_bridge:LMEvalTask",
        "mtbench": "distillbench.benchmarks.mtbench:MTBench",
        "pocket-mtbench": "distillbench.benchmarks.mtbench:PocketMTBench",
        "pocket-math": "distillbench.benchmarks.pocket_math:PocketMath",
        "pocket-retrieval": "distillbench.benchmarks.retrieval:PocketRetrieval",
        "pocket-rewardbench": "distillbench.benchmarks.rewardbench:PocketRewardBench",
        "rewardbench": "distillbench.benchmarks.rewardbench:RewardBench",
        "cifar100": "distillbench.benchmarks.top1:Cifar100",
        "top1": "distillbench.benchmarks.top1:Top1",
        "chair": "distillbench.benchmarks.vlm.benchmarks:CHAIR",
        "pope": "distillbench.benchmarks.vlm.benchmarks:POPE",
        "videohallucer": "distillbench.benchmarks.vlm.benchmarks:VideoHallucer",
        "vqav2": "distillbench.benchmarks.vlm.benchmarks:VQAv2",
        "pocket-chair": "distillbench.benchmarks.vlm.pocket:PocketCHAIR",
        "pocket-pope": "distillbench.benchmarks.vlm.pocket:PocketPOPE",
        "pocket-videohallucer": "distillbench.benchmarks.vlm.pocket:PocketVideoHallucer",
        "pocket-vqa": "distillbench.benchmarks.vlm.pocket:PocketVQA",
    },
    "judges": {
        "hf-chat": "distillbench.benchmarks.judges.hf:HFChatJudge",
        "openai-http": "distillbench.benchmarks.judges.http:OpenAIHTTPJudge",
        "pocket-oracle": "distillbench.benchmarks.judges.oracle:PocketOracleJudge",
    },
    "model_backends": {
        "hf": "distillbench.core.models:_hf_backend",
        "local": "distillbench.core.models:_local_backend",
        "pocket": "distillbench.core.models:_pocket_backend",
    },
    "kinds": {
        "image-classifier": "distillbench.kinds.image_classifier.kind:ImageClassifier",
        "tabular": "distillbench.kinds.tabular.kind:Tabular",
        "text-lm": "distillbench.kinds.text_lm.kind:TextLM",
    },
    "reports": {
        "autodistiller": "distillbench.pocket.autodistiller_report:AutoDistillerReport",
        "diswot": "distillbench.pocket.diswot_report:DisWOTReport",
    },
}
