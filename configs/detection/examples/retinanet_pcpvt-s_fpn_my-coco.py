# RetinaNet + Twins-PCPVT-S on a COCO-format dataset of your own (docs/custom_data.md walks through it).
# Everything not set here is the shipped 1x recipe (retinanet_pcpvt-s_fpn_1x_coco.py). Change the four
# marked settings to your data; tools/train.py / tools/test.py check them before training (class names
# against the json's categories, num_classes of every head, boxes, image files).
_base_ = "../retinanet_pcpvt-s_fpn_1x_coco.py"

# (1) where the data is: images in <data_root>/train2017/ and val2017/, one COCO json per split
data_root = "data/my_coco/"
train_ann, val_ann = "annotations/instances_train2017.json", "annotations/instances_val2017.json"
# (2) your class names, exactly as the json's categories spell them (in the order you want the labels)
classes = ("circle", "square", "triangle")
# (3) the image size the network sees (keeps the aspect ratio; (1333, 800) in the COCO recipe)
img_scale = (320, 240)
# (4) the most detections kept per image: above the largest object count of your images (mmdet's default
#     of 100 silently caps recall on dense scenes such as cells or crowds)
max_per_img = 300

metainfo = dict(classes=classes)
model = dict(bbox_head=dict(num_classes=len(classes)), test_cfg=dict(max_per_img=max_per_img))

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=train_ann,
        data_prefix=dict(img="train2017/"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_ann,
        data_prefix=dict(img="val2017/"),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann)  # the evaluator takes the full path
test_evaluator = val_evaluator

# a short schedule for a small dataset: 12 epochs, lr x0.1 after epoch 8 and 11 (the base's), batch 2
auto_scale_lr = dict(enable=False, base_batch_size=16)
