"""The dataset-distillation kind: a method's product is a small image set, scored through a fresh image
classifier trained on it alone. It sits inside the image-classifier kind's folder because it is built on
that kind's library (image sources, batching, the classifier format its experts and students are saved
in); kinds in separate folders import only the core."""
