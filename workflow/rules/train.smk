# Face-recognition pretraining: the FER networks' `fr_pretrained` initialisation.
rule pretrain_fr:
    input:
        unpack(RULES.inputs("pretrain_fr")),
    output:
        RULES.outputs("pretrain_fr"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("pretrain_fr"),
    threads: RULES.threads("pretrain_fr")
    resources:
        **RULES.resources("pretrain_fr"),
    shell:
        RULES.shell("pretrain_fr")


rule train_supervised:
    input:
        unpack(RULES.inputs("train_supervised")),
    output:
        RULES.outputs("train_supervised"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("train_supervised"),
    threads: RULES.threads("train_supervised")
    resources:
        **RULES.resources("train_supervised"),
    shell:
        RULES.shell("train_supervised")


# Face2Exp: teacher-student meta-training, then the student's finetuning and its
# control (the baseline put through the same finetune): finetune@student, finetune@control.
rule train_meta:
    input:
        unpack(RULES.inputs("train_meta")),
    output:
        RULES.outputs("train_meta"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("train_meta"),
    threads: RULES.threads("train_meta")
    resources:
        **RULES.resources("train_meta"),
    shell:
        RULES.shell("train_meta")


rule finetune:
    input:
        unpack(RULES.inputs("finetune")),
    output:
        RULES.outputs("finetune"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("finetune"),
    threads: RULES.threads("finetune")
    resources:
        **RULES.resources("finetune"),
    wildcard_constraints:
        model=RULES.wildcard_pattern("finetune"),
    shell:
        RULES.shell("finetune")


# Omni-supervised mining: a labelled dataset mined from the face-recognition pool.
rule mine_pseudo:
    input:
        unpack(RULES.inputs("mine_pseudo")),
    output:
        RULES.outputs("mine_pseudo"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("mine_pseudo"),
    threads: RULES.threads("mine_pseudo")
    resources:
        **RULES.resources("mine_pseudo"),
    shell:
        RULES.shell("mine_pseudo")
