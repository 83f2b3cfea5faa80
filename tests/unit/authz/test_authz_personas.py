"""The persona matrix is the one in STORIES.md, and levels imply what the stories say."""

from keel.identity.personas import MATRIX, Level, Persona, ServiceArea, grants


def test_there_are_nine_provider_and_six_tenant_personas():
    assert [p.value for p in Persona if p.is_provider] == [
        "PO",
        "PA",
        "SA",
        "SS",
        "KA",
        "WA",
        "SRE",
        "CO",
        "AU",
    ]
    assert [p.value for p in Persona if not p.is_provider] == ["TA", "TP", "BO", "DE", "AN", "IO"]


def test_personas_carry_the_titles_the_stories_use():
    assert {p.value: p.title for p in Persona} == {
        "PO": "Platform Owner",
        "PA": "Platform Admin",
        "SA": "Security Admin",
        "SS": "Schema Steward",
        "KA": "KPI Author",
        "WA": "Workflow Author",
        "SRE": "Observability/SRE",
        "CO": "Compliance Officer",
        "AU": "Auditor",
        "TA": "Tenant Admin",
        "TP": "Tenant Approver",
        "BO": "Business Owner",
        "DE": "Tenant Data Engineer",
        "AN": "Analyst/Viewer",
        "IO": "Integration Operator",
    }


def test_every_area_has_a_cell_for_every_persona():
    assert list(MATRIX) == list(ServiceArea)
    assert all(list(row) == list(Persona) for row in MATRIX.values())


def test_matrix_rows_are_transcribed_from_the_story_digest():
    # Rows copied from STORIES.md "Personas and permissions" (PO..AN), IO appended as R.
    def row(area):
        return "".join(MATRIX[area][p].value for p in Persona)

    assert row(ServiceArea.PLATFORM) == "AMCCCCCRRRCRRR" + "R"
    assert row(ServiceArea.IAM) == "ACMRRRRRRRCRRR" + "R"
    assert row(ServiceArea.SCHEMA) == "CCCMCRRRRRCRCR" + "R"
    assert row(ServiceArea.KPI) == "RCCCMRRRRRCCCR" + "R"
    assert row(ServiceArea.WORKFLOW) == "CCCRCMRRRCAACR" + "R"
    assert row(ServiceArea.CONNECTOR) == "CACCRRRRRMCRMR" + "R"
    assert row(ServiceArea.OBSERVABILITY) == "RMRRRRMRRRCRRR" + "R"
    assert row(ServiceArea.EVIDENCE) == "RRRRRRRMRRRRRR" + "R"


def test_spot_checked_cells_match_the_story_digest():
    assert MATRIX[ServiceArea.PLATFORM][Persona.PA] is Level.M
    assert MATRIX[ServiceArea.IAM][Persona.SA] is Level.M
    assert MATRIX[ServiceArea.CONNECTOR][Persona.PA] is Level.A
    assert MATRIX[ServiceArea.WORKFLOW][Persona.TP] is Level.A
    assert MATRIX[ServiceArea.KPI][Persona.BO] is Level.C
    assert MATRIX[ServiceArea.EVIDENCE][Persona.CO] is Level.M
    assert MATRIX[ServiceArea.OBSERVABILITY][Persona.SRE] is Level.M
    assert MATRIX[ServiceArea.SCHEMA][Persona.DE] is Level.C


def test_the_integration_operator_reads_everywhere_and_manages_nothing_by_matrix():
    assert {MATRIX[area][Persona.IO] for area in ServiceArea} == {Level.R}


def test_each_level_grants_exactly_the_levels_it_implies():
    cells = {
        Persona.PA: ServiceArea.PLATFORM,  # M
        Persona.PO: ServiceArea.PLATFORM,  # A
        Persona.SA: ServiceArea.PLATFORM,  # C
        Persona.CO: ServiceArea.PLATFORM,  # R
    }
    implied = {p.value: {lv.value for lv in Level if grants(p, area, lv)} for p, area in cells.items()}
    assert implied == {"PA": {"M", "C", "R"}, "PO": {"A", "R"}, "SA": {"C", "R"}, "CO": {"R"}}
