rule evaluate:
    input:
        unpack(RULES.inputs("evaluate")),
    output:
        RULES.outputs("evaluate"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("evaluate"),
    shell:
        RULES.shell("evaluate")
