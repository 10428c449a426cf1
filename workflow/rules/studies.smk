# Face2Exp's Tables 4 and 6 on the demo data: a separate target, not part of `rule all`
# (`snakemake report_spatial`; budget: about 45 min on 2 CPU cores). One job per seed.
rule spatial_study:
    input:
        unpack(RULES.inputs("spatial_study")),
    output:
        RULES.outputs("spatial_study"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("spatial_study"),
    resources:
        **RULES.resources("spatial_study"),
    # Each job trains on every core it is given: the seeds run one
    # after the other, as under `dvc repro`.
    threads: RULES.threads("spatial_study")
    wildcard_constraints:
        seed=RULES.wildcard_pattern("spatial_study"),
    shell:
        RULES.shell("spatial_study")


rule report_spatial:
    input:
        unpack(RULES.inputs("report_spatial")),
    output:
        RULES.outputs("report_spatial"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("report_spatial"),
    threads: RULES.threads("report_spatial")
    resources:
        **RULES.resources("report_spatial"),
    shell:
        RULES.shell("report_spatial")


# LNSU's Table 3 and ABAW4-LSD's modules on long-tailed subsets: a separate target, not part of
# `rule all` (`snakemake report_imbalance`; budget: about 45 min on 2 CPU cores). One job per seed.
rule imbalance_study:
    input:
        unpack(RULES.inputs("imbalance_study")),
    output:
        RULES.outputs("imbalance_study"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("imbalance_study"),
    resources:
        **RULES.resources("imbalance_study"),
    # Each job trains on every core it is given: the seeds run one after the other.
    threads: RULES.threads("imbalance_study")
    wildcard_constraints:
        seed=RULES.wildcard_pattern("imbalance_study"),
    shell:
        RULES.shell("imbalance_study")


# Seed 001 in the same target: Algorithm 1 on the mined pool faces, one training job per model of
# distill.models (every imbalance seed), one evaluation job per (model, test set).
rule distill:
    input:
        unpack(RULES.inputs("distill")),
    output:
        RULES.outputs("distill"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("distill"),
    threads: RULES.threads("distill")
    resources:
        **RULES.resources("distill"),
    shell:
        RULES.shell("distill")


rule train_auxiliary:
    input:
        unpack(RULES.inputs("train_auxiliary")),
    output:
        RULES.outputs("train_auxiliary"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("train_auxiliary"),
    threads: RULES.threads("train_auxiliary")
    resources:
        **RULES.resources("train_auxiliary"),
    wildcard_constraints:
        model=RULES.wildcard_pattern("train_auxiliary"),
    shell:
        RULES.shell("train_auxiliary")


rule cross_evaluate:
    input:
        unpack(RULES.inputs("cross_evaluate")),
    output:
        RULES.outputs("cross_evaluate"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("cross_evaluate"),
    threads: RULES.threads("cross_evaluate")
    resources:
        **RULES.resources("cross_evaluate"),
    wildcard_constraints:
        model=RULES.wildcard_pattern("cross_evaluate", "model"),
        test_set=RULES.wildcard_pattern("cross_evaluate", "test_set"),
    shell:
        RULES.shell("cross_evaluate")


rule report_imbalance:
    input:
        unpack(RULES.inputs("report_imbalance")),
    output:
        RULES.outputs("report_imbalance"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("report_imbalance"),
    threads: RULES.threads("report_imbalance")
    resources:
        **RULES.resources("report_imbalance"),
    shell:
        RULES.shell("report_imbalance")
