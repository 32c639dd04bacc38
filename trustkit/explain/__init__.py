"""What a model looks at: attributions (Captum), their faithfulness and sanity, class-score maximisation and
feature visualisation, neural style transfer. One file per topic:

* ``methods``      ATTRIBUTION_METHODS (grad, input-x-grad, smoothgrad, integrated-gradients, gradcam, occlusion),
                   built on Captum;
* ``faithfulness`` deletion / insertion curves and their AUC;
* ``randomization`` the model-parameter randomisation test (Adebayo et al. 2018);
* ``visualize``    class-score maximisation and feature visualisation (Simonyan et al. 2014; Yosinski et al. 2015),
                   with its image ``priors`` and GAN ``discriminator`` targets;
* ``style``        neural style transfer from Gram matrices (Gatys et al. 2016); ``style_layers`` chooses its
                   content and style layers, ``image_files`` decodes the user's images.
"""
