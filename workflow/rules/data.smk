# FaceSynth, the embedded demo data, written in the real datasets' on-disk formats.
# The stage exists only while some dataset in params.yaml is read from its output.
if RULES.has("generate"):

    rule generate:
        input:
            unpack(RULES.inputs("generate")),
        output:
            RULES.outputs("generate"),
        conda:
            "../../environment.yml"
        log:
            RULES.log("generate"),
        threads: RULES.threads("generate")
        resources:
            **RULES.resources("generate"),
        shell:
            RULES.shell("generate")
# Scatter: one job per input partition (`datasets.<name>.parts`) of each dataset.
rule prepare:
    input:
        unpack(RULES.inputs("prepare")),
    output:
        RULES.outputs("prepare"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("prepare"),
    threads: RULES.threads("prepare")
    resources:
        **RULES.resources("prepare"),
    wildcard_constraints:
        dataset=RULES.wildcard_pattern("prepare", "dataset"),
        index=RULES.wildcard_pattern("prepare", "index"),
    shell:
        RULES.shell("prepare")


# Gather: one job per dataset joins its partitions (shards linked, rejects and counts summed).
rule gather:
    input:
        unpack(RULES.inputs("gather")),
    output:
        RULES.outputs("gather"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("gather"),
    threads: RULES.threads("gather")
    resources:
        **RULES.resources("gather"),
    wildcard_constraints:
        dataset=RULES.wildcard_pattern("gather"),
    shell:
        RULES.shell("gather")
