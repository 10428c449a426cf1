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
