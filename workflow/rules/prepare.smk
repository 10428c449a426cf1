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
    wildcard_constraints:
        dataset=RULES.wildcard_pattern("gather"),
    shell:
        RULES.shell("gather")
