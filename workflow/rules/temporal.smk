# Temporal phase (seed 002): frozen-student frame features, the temporal encoder
# (and its frame-level twin) per seed, then whole-video evaluation with post-processing.
rule extract_features:
    input:
        unpack(RULES.inputs("extract_features")),
    output:
        RULES.outputs("extract_features"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("extract_features"),
    threads: RULES.threads("extract_features")
    resources:
        **RULES.resources("extract_features"),
    shell:
        RULES.shell("extract_features")


rule train_temporal:
    input:
        unpack(RULES.inputs("train_temporal")),
    output:
        RULES.outputs("train_temporal"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("train_temporal"),
    threads: RULES.threads("train_temporal")
    resources:
        **RULES.resources("train_temporal"),
    shell:
        RULES.shell("train_temporal")


rule evaluate_temporal:
    input:
        unpack(RULES.inputs("evaluate_temporal")),
    output:
        RULES.outputs("evaluate_temporal"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("evaluate_temporal"),
    threads: RULES.threads("evaluate_temporal")
    resources:
        **RULES.resources("evaluate_temporal"),
    shell:
        RULES.shell("evaluate_temporal")
