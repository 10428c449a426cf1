# One job per evaluated model (supervised baseline, its finetuned control, the Face2Exp student).
rule evaluate:
    input:
        unpack(RULES.inputs("evaluate")),
    output:
        RULES.outputs("evaluate"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("evaluate"),
    threads: RULES.threads("evaluate")
    resources:
        **RULES.resources("evaluate"),
    wildcard_constraints:
        model=RULES.wildcard_pattern("evaluate"),
    shell:
        RULES.shell("evaluate")
