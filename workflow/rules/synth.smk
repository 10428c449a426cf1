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
        shell:
            RULES.shell("generate")
