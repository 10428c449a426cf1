# One job per dataset (a scatter over params.yaml `datasets`).
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
        dataset=RULES.wildcard_pattern("prepare"),
    shell:
        RULES.shell("prepare")
