rule report:
    input:
        unpack(RULES.inputs("report")),
    output:
        RULES.outputs("report"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("report"),
    threads: RULES.threads("report")
    resources:
        **RULES.resources("report"),
    shell:
        RULES.shell("report")
