"""The one global label table of the synthetic patients.

Every structure has ONE value shared by all phantom kinds, so a segmentation network trained on any
mix of cases sees consistent classes. Names are stable lower_snake_case; codes are SNOMED CT
("SCT:<id>") where known. Values never change once published: add new structures at the end.
"""

from __future__ import annotations

from surgtwin.core.types import Label, LabelTable

# (value, name, colour RGB, SNOMED CT code or None)
_LABELS: tuple[tuple[int, str, tuple[int, int, int], str | None], ...] = (
    # body tissues
    (1, "skin", (177, 122, 101), "SCT:39937001"),
    (2, "fat", (230, 220, 70), "SCT:55603005"),
    (3, "muscle", (192, 104, 88), "SCT:91727004"),
    # thorax / abdomen organs
    (4, "lung_left", (197, 165, 145), "SCT:44029006"),
    (5, "lung_right", (197, 165, 145), "SCT:3341006"),
    (6, "liver", (221, 130, 101), "SCT:10200004"),
    (7, "spleen", (157, 108, 162), "SCT:78961009"),
    (8, "kidney_left", (185, 102, 83), "SCT:25990002"),
    (9, "kidney_right", (185, 102, 83), "SCT:9846003"),
    (10, "gallbladder", (139, 150, 98), "SCT:28231008"),
    (11, "stomach", (216, 132, 105), "SCT:69695003"),
    (12, "bowel", (205, 167, 142), "SCT:113276009"),
    (13, "urinary_bladder", (222, 154, 132), "SCT:89837001"),
    # vessels
    (14, "aorta", (224, 97, 76), "SCT:15825003"),
    (15, "inferior_vena_cava", (0, 151, 206), "SCT:64131007"),
    (16, "renal_artery_left", (224, 97, 76), "SCT:113205007"),
    (17, "renal_artery_right", (224, 97, 76), "SCT:68505006"),
    (18, "iliac_artery_left", (216, 101, 79), "SCT:113269004"),
    (19, "iliac_artery_right", (216, 101, 79), "SCT:69833005"),
    # skeleton
    (20, "vertebrae", (241, 214, 145), "SCT:51282000"),
    (21, "intervertebral_disc", (188, 95, 76), "SCT:360499006"),
    (22, "spinal_canal", (244, 214, 49), "SCT:61496007"),
    (23, "pelvis", (241, 214, 145), "SCT:12921003"),
    (24, "femur_left", (241, 214, 145), "SCT:113197003"),
    (25, "femur_right", (241, 214, 145), "SCT:62413002"),
    (26, "medullary_canal", (255, 244, 209), "SCT:86164009"),
    (27, "ribs", (241, 214, 145), "SCT:113197003"),
    (28, "sternum", (241, 214, 145), "SCT:56873002"),
    # heart
    (29, "left_ventricle", (204, 64, 64), "SCT:87878005"),
    (30, "myocardium", (170, 80, 80), "SCT:74281007"),
    (31, "right_ventricle", (80, 110, 200), "SCT:53085002"),
    (32, "left_atrium", (220, 120, 120), "SCT:82471001"),
    (33, "right_atrium", (100, 130, 210), "SCT:73829009"),
    (34, "aortic_root", (240, 60, 60), "SCT:91748002"),
    (35, "ascending_aorta", (230, 80, 70), "SCT:54247002"),
    (36, "pulmonary_artery", (70, 100, 220), "SCT:81040000"),
    (37, "coronary_artery_left", (255, 150, 40), "SCT:3227004"),
    (38, "coronary_artery_right", (255, 190, 40), "SCT:13647002"),
    (39, "calcification", (255, 255, 255), "SCT:18115005"),
    # head
    (40, "skull", (241, 214, 145), "SCT:89546000"),
    (41, "brain_grey_matter", (200, 200, 200), "SCT:389079005"),
    (42, "brain_white_matter", (250, 250, 225), "SCT:33060001"),
    (43, "ventricles", (88, 106, 215), "SCT:35764002"),
    (44, "csf", (120, 140, 230), "SCT:280371009"),
    (45, "brain_stem", (200, 170, 120), "SCT:15926001"),
    (46, "cerebellum", (180, 180, 150), "SCT:113305005"),
    (47, "vessels", (220, 60, 60), "SCT:59820001"),
    (48, "tumour", (90, 230, 90), "SCT:108369006"),
    (49, "eyes", (200, 220, 255), "SCT:81745001"),
    (50, "descending_aorta", (224, 97, 76), "SCT:32062004"),
)

#: name -> value, for builders (``L["liver"]``)
L: dict[str, int] = {name: value for value, name, _c, _s in _LABELS}


def label_table(values=None) -> LabelTable:
    """The global label table, or the subset with the given values (e.g. those present in a case)."""
    keep = None if values is None else {int(v) for v in values}
    return LabelTable(
        Label(value=v, name=n, color=c, code=s) for v, n, c, s in _LABELS if keep is None or v in keep
    )


BONE_LABELS = ("vertebrae", "pelvis", "femur_left", "femur_right", "ribs", "sternum", "skull")
